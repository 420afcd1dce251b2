"""Local stand-ins for Kakao AlimTalk, the SMS gateway and the venue (API.md §3).

Real HTTP servers that record every call, deduplicate by message/registration id
as the real providers do, and fail on demand through `/_sim/` controls.
"""

from workers.devstack.simulators.app import create_app
from workers.devstack.simulators.providers import PROVIDERS, ProviderName
from workers.devstack.simulators.server import SimulatorServer
from workers.devstack.simulators.state import Behaviour, CallRecord, SimulatorState

__all__ = [
    "PROVIDERS",
    "Behaviour",
    "CallRecord",
    "ProviderName",
    "SimulatorServer",
    "SimulatorState",
    "create_app",
]
