"""The ``forward_output`` / ``forward_logging`` spec keys and their environment variables.

``popen//forward_output`` (or ``EXECNET_FORWARD_OUTPUT=1`` in the caller's environment,
for every gateway it makes: unmodified pytest-xdist with ``-s`` then shows its workers'
prints) has the remote's fds 1 and 2 forwarded to this process's ``sys.stderr``, lines
prefixed ``[<id>] `` / ``[<id>:err] ``. ``forward_logging`` (True or a level such as
``INFO``; ``EXECNET_FORWARD_LOGGING``) sends the remote's log records to the logger
``execnet.remote.<id>``. A spec key wins over the variable (``forward_output=0`` turns it
off for one gateway). See ``BaseGateway.forward_output`` for the callback form.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

from ._xspec import XSpec

__all__ = ["FORWARD_LOGGING_VARIABLE", "FORWARD_OUTPUT_VARIABLE", "forwarding_of"]

FORWARD_OUTPUT_VARIABLE = "EXECNET_FORWARD_OUTPUT"
FORWARD_LOGGING_VARIABLE = "EXECNET_FORWARD_LOGGING"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _flag(value: object, what: str) -> bool:
    if value is True:
        return True
    text = str(value).strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ValueError(f"{what}: expected 1/0, true/false, yes/no or on/off")


def _logging(value: object, what: str) -> Union[bool, int, str]:
    if value is True:
        return True
    text = str(value).strip()
    if text.upper() in _LEVELS:
        return text.upper()
    if text.isdigit():
        return int(text)
    return _flag(text, what + " (or a level: DEBUG, INFO, WARNING, ERROR, CRITICAL, a number)")


def forwarding_of(spec: XSpec) -> Optional[Tuple[bool, Union[bool, int, str]]]:
    """(forward output, forward logging) the spec and the environment ask for; None when
    neither is asked for (the gateway then sends nothing more at its start). ValueError
    naming the spec or the variable for a value that is not understood.

    >>> forwarding_of(XSpec("popen//forward_output//forward_logging=INFO"))
    (True, 'INFO')
    """
    output_value = spec.forward_output
    if output_value is not None:
        what = f"forward_output={output_value!r} in gateway spec {str(spec)!r}"
        output = _flag(output_value, what)
    else:
        variable = os.environ.get(FORWARD_OUTPUT_VARIABLE, "")
        output = _flag(variable, f"{FORWARD_OUTPUT_VARIABLE}={variable!r}")
    logging_value = spec.forward_logging
    logging: Union[bool, int, str]
    if logging_value is not None:
        logging = _logging(
            logging_value, f"forward_logging={logging_value!r} in gateway spec {str(spec)!r}"
        )
    else:
        variable = os.environ.get(FORWARD_LOGGING_VARIABLE, "")
        logging = _logging(variable, f"{FORWARD_LOGGING_VARIABLE}={variable!r}")
    if not output and logging is False:
        return None
    return output, logging
