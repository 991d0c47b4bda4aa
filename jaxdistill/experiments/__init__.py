"""Reproductions of the paper's experiments (section 5, Figures 1-5) and
learning curves.  Each module has ``run(out_dir, *, seed=0, quick=False,
progress=True) -> rows`` that writes ``NAME.csv`` and ``NAME.png`` into
``out_dir`` (resumable: see ``_common``), and ``COLUMNS``."""

EXPERIMENTS = ("fig1", "fig2", "fig3", "fig4", "fig5", "curves", "temperature", "softratio", "nonlinear")


def get(name: str):
    """The experiment module called ``name``."""
    import importlib

    from ..validation import check_choice

    check_choice("experiment", name, EXPERIMENTS)
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["EXPERIMENTS", "get"]
