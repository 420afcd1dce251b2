"""Run a simulator on a real socket: in a background thread for tests, or in the foreground.

`SimulatorServer` binds a free port on first start and keeps it, so a test can
stop the server (clients then get "connection refused") and start it again at
the same URL, with its recorded calls and behaviour intact.
"""

import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from workers.devstack.simulators.app import create_app
from workers.devstack.simulators.providers import ProviderName
from workers.devstack.simulators.state import Behaviour, CallRecord, SimulatorState

_START_TIMEOUT_SECONDS = 10.0


def uvicorn_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        # A deliberately slow reply must not hold up a stop for long.
        timeout_graceful_shutdown=1,
    )


class SimulatorServer:
    """One provider simulator served by uvicorn in a daemon thread."""

    def __init__(
        self,
        provider: ProviderName,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.provider = provider
        self.api_key = api_key
        self.host = host
        self.port = port
        self.state = SimulatorState()
        self._app = create_app(provider, api_key=api_key, state=self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the simulator has not been started yet")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Serve on the remembered port (a free one the first time); return once listening."""
        if self.running:
            return
        server = uvicorn.Server(uvicorn_config(self._app, self.host, self.port))
        thread = threading.Thread(target=server.run, name=f"{self.provider}-simulator", daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(_START_TIMEOUT_SECONDS)
                raise RuntimeError(f"{self.provider} simulator failed to start on {self.port}")
            time.sleep(0.005)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening; afterwards connections to `base_url` are refused."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(_START_TIMEOUT_SECONDS)
        self._server = self._thread = None

    def __enter__(self) -> "SimulatorServer":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Shortcuts for tests, the same operations as the /_sim/ endpoints.

    def behave(self, **behaviour: object) -> None:
        """Switch behaviour, e.g. `behave(mode="error", status=503, times=2)`."""
        self.state.set_behaviour(Behaviour.model_validate(behaviour))

    def calls(self) -> list[CallRecord]:
        return self.state.calls()

    def stats(self) -> dict[str, int]:
        return self.state.stats()

    def reset(self) -> None:
        """Back to a fresh, healthy provider: behaviour ok, no calls, no ids seen."""
        self.state.set_behaviour(Behaviour())
        self.state.clear()
