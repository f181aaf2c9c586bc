"""The caption progress bar: images done, images/s and time left (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class ImagesPerSecondColumn(ProgressColumn):
    """The task's recent speed, in images/s."""

    def render(self, task: Task) -> Text:
        """Format ``task.speed`` (``--`` before the first update)."""
        speed = task.finished_speed or task.speed
        return Text("-- images/s" if speed is None else f"{speed:.1f} images/s")


@contextmanager
def caption_progress(total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` images; yields ``advance(count)``.

    Args:
        total: Images this process will caption.
        enabled: ``False`` on ranks other than 0 or when asked: nothing is drawn.
    """
    progress = Progress(
        TextColumn("captioning"),
        BarColumn(),
        MofNCompleteColumn(),
        ImagesPerSecondColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        speed_estimate_period=60.0,
    )
    task = progress.add_task("captioning", total=total)
    with progress:
        yield lambda count: progress.advance(task, count)
