"""Switching a worker's models when the models file changes, without a restart.

Every `reload_s` the worker rereads the file. A changed spec is loaded and checked off the event
loop (the tags' metadata, the ONNX parity record, a warm-up call of every engine), then served
from the next request on: `CreditScorer.switch` is one reference assignment, and a request reads
the served model once, so requests in progress finish on the models they started with. The
replaced engines are closed once no request can still use them (after the request timeout).
A file or tag that cannot be used keeps the current models: one warning per distinct content of
the file, one count in credit_risk_models_reload_failures_total.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from runners.device import DeviceUnavailableError
from runners.model_store import ModelLoadError
from service.models_file import ModelsFileError, ModelsSpec, parse_models

logger = logging.getLogger("credit_risk")


class LoadedModels(Protocol):
    """What a spec loads into (its engines, to close once replaced)."""

    async def close(self) -> None: ...


@dataclass
class ModelSwitch:
    path: Path
    reload_s: float
    spec: ModelsSpec  # what is served now
    load: Callable[[ModelsSpec], LoadedModels]  # loads and checks; runs in a thread
    apply: Callable[[ModelsSpec, LoadedModels], None]  # serves them (on the event loop)
    count_failure: Callable[[], None]
    retire_after_s: float  # no request started before a switch runs longer than this
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _seen: str | None = None  # the file content last acted on (None: not read yet)

    def __post_init__(self) -> None:
        self._retiring: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Check the file every `reload_s` until cancelled."""
        while True:
            await self.sleep(self.reload_s)
            await self.check()

    async def check(self) -> bool:
        """Reread the file; True when the models were switched."""
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return self._fail(f"<unreadable: {error}>", f"cannot be read ({error})")
        if text == self._seen:
            return False
        self._seen = text
        try:
            spec = parse_models(text, str(self.path))
        except ModelsFileError as error:
            return self._fail(text, str(error), seen=True)
        if spec == self.spec:
            return False
        try:
            loaded = await asyncio.to_thread(self.load, spec)
        except (ModelLoadError, DeviceUnavailableError, ModelsFileError) as error:
            return self._fail(text, str(error), seen=True)
        self.apply(spec, loaded)
        self.spec = spec
        logger.warning(
            "models switched: champion %s, challenger %s, mode %s",
            spec.champion,
            spec.challenger,
            spec.mode,
        )
        return True

    def _fail(self, text: str, reason: str, *, seen: bool = False) -> bool:
        """One warning and one count per distinct unusable content; the models stay."""
        if not seen:
            if text == self._seen:
                return False
            self._seen = text
        logger.warning("models file %s not used, current models kept: %s", self.path, reason)
        self.count_failure()
        return False

    def retire(self, loaded: LoadedModels) -> None:
        """Close replaced engines once requests that started on them are over."""

        async def later() -> None:
            await self.sleep(self.retire_after_s)
            await loaded.close()

        task = asyncio.get_running_loop().create_task(later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
