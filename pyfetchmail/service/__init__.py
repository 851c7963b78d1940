"""The program around the engine: wiring, single run and daemon loop, poll cycles,
IDLE threads, signals and the pid/lock file."""

__all__: list[str] = []
