"""``flux_gate``: keep a governed Flux target suspended while its release is deferred, resume it
(with a reconcile request) when the release is approved (DESIGN §3 Flux: Flux has no pre-sync hook).

One action per decision of a Flux release; a newer decision's action replaces one still waiting
(the outbox scope is the target), and one identical to the last done is not enqueued. Idempotent:
the actuator leaves an object already suspended, or already resumed with that reconcile request,
alone.
"""

from __future__ import annotations

from gatekeeper.actions import ActionFailedError
from gatekeeper.actuators import ActuatorError
from gatekeeper.actuators.flux import FluxActuator, FluxObject
from gatekeeper.domain.records import ActionRecord, ReleaseDetail


class FluxGateHandler:
    kind = "flux_gate"

    def __init__(self, flux: FluxActuator | None) -> None:
        self.flux = flux

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if self.flux is None:
            raise ActionFailedError("Flux gating is off (GATEKEEPER_FLUX_GATE)")
        payload = action.payload
        try:
            target = FluxObject.from_target(payload["target"])
            if payload["suspend"]:
                return self.flux.suspend(target).message
            return self.flux.resume(target, payload["requested_at"]).message
        except ActuatorError as exc:
            raise ActionFailedError(str(exc)) from exc
