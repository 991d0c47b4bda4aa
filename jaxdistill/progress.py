"""Progress bars for long runs (tqdm when enabled, a no-op otherwise)."""

from __future__ import annotations


class NoProgress:
    """The disabled progress bar."""

    def update(self, k: int) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def write(self, msg: str, file=None) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, *, initial: int = 0, desc: str = "transfer sets"):
    """A bar counting sets done, with rate and time left; ``NoProgress`` when disabled."""
    if not enabled:
        return NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="set", desc=desc, dynamic_ncols=True, mininterval=0.5)


__all__ = ["NoProgress", "progress_bar"]
