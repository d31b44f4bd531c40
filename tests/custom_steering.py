"""A user's steering strategy, for the plug-in test: pushes the first view's components apart."""

from __future__ import annotations

from gnngmm.steering import Steering, component_dilation

CALLS: list[int] = []


class PullApart(Steering):
    def term(self, module, batch, output):
        CALLS.append(int(module.current_epoch))
        view = output.views[0]
        resp = module.head.responsibilities(view).detach()
        return self.weight * component_dilation(module.head.transform(view), resp).to(output.loss.dtype)
