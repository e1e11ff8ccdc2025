"""``envi`` (a test plug-in): a python started through ``env -i PATH=...``.

``envi//envi_path=/usr/bin:/bin//python=...``: the interpreter starts with nothing in
its environment but PATH (and what ``env:NAME=value`` keys set through the bootstrap).
"""

from __future__ import annotations

import sys
from typing import Union

from execnet_transport import Command, Gateway, StartRequest, XSpec

__all__ = ["ENVI"]


class EnvTransport:
    keys = ("envi_path",)

    def check(self, spec: XSpec) -> None:
        if spec.envi_path is True:
            raise ValueError(f"envi_path in gateway spec {str(spec)!r} needs a value")

    def start(self, request: StartRequest) -> Union[Command, Gateway]:
        path = request.spec.envi_path or "/usr/bin:/bin"
        return Command(
            ["env", "-i", f"PATH={path}", *request.python_args(sys.executable)],
            remoteaddress=f"env -i PATH={path}",
        )


ENVI = EnvTransport()
