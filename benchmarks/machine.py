"""What every benchmark JSON records about the machine it ran on (its "meta"
block): one place, so that results from different scripts compare."""

from __future__ import annotations

import os
import platform
import time


def machine_meta() -> dict:
    """The machine, the software and the date of a benchmark run.

    Keys: date (YYYY-MM-DD), python, platform, processor, cpu_count,
    load_average (1, 5, 15 min; None where the OS has none), xla_flags,
    jax, jaxlib, backend, device_kind, devices (one string a device),
    compilation_cache_dir (JAX's persistent compilation cache, None when
    off: with one, a "compile time" may be the time to load the program).
    """
    import jax
    import jaxlib

    devices = jax.devices()
    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover (no load average on this OS)
        load = None
    return {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor(), "cpu_count": os.cpu_count(), "load_average": load,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
            "devices": [str(dv) for dv in devices],
            "compilation_cache_dir": jax.config.jax_compilation_cache_dir}


__all__ = ["machine_meta"]
