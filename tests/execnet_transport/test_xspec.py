"""XSpec: every rule API.md states, and what pytest-xdist does with specs."""

from __future__ import annotations

import pytest

from execnet_transport import XSpec
from execnet_transport._xspec import KNOWN_KEYS


def test_known_keys_read_none_when_absent() -> None:
    spec = XSpec("popen")
    assert spec.popen is True
    for key in KNOWN_KEYS:
        if key != "popen":
            assert getattr(spec, key) is None, key
    assert spec.env == {}


def test_key_values_and_flags() -> None:
    spec = XSpec(
        "ssh=-p 5000 myhost//python=/opt/py/bin/python3.8//chdir=a/b//nice=5//id=w1"
        "//execmodel=gevent//dont_write_bytecode//ssh_config=/tmp/cfg"
    )
    assert spec.ssh == "-p 5000 myhost"
    assert spec.python == "/opt/py/bin/python3.8"
    assert spec.chdir == "a/b"
    assert spec.nice == "5"
    assert spec.id == "w1"
    assert spec.execmodel == "gevent"
    assert spec.dont_write_bytecode is True
    assert spec.ssh_config == "/tmp/cfg"


def test_socket_via_installvia_vagrant() -> None:
    assert XSpec("socket=localhost:8888").socket == "localhost:8888"
    spec = XSpec("socket//installvia=gw0")
    assert spec.socket is True
    assert spec.installvia == "gw0"
    assert XSpec("popen//via=gw3").via == "gw3"
    assert XSpec("vagrant_ssh=default").vagrant_ssh == "default"


def test_value_keeps_equals_signs() -> None:
    assert XSpec("popen//env:OPTS=a=b=c").env == {"OPTS": "a=b=c"}
    assert XSpec("popen//python=env X=1 python3").python == "env X=1 python3"


def test_env_keys_collect_in_env() -> None:
    spec = XSpec("popen//env:A=1//env:B=two words//env:EMPTY=")
    assert spec.env == {"A": "1", "B": "two words", "EMPTY": ""}


def test_env_without_value_is_refused_naming_the_spec() -> None:
    with pytest.raises(ValueError, match=r"popen//env:FOO.*env:NAME=value"):
        XSpec("popen//env:FOO")
    with pytest.raises(ValueError, match="env:NAME=value"):
        XSpec("popen//env:=1")


def test_unknown_keys_are_kept() -> None:
    spec = XSpec("popen//myplugin=3//flag")
    assert spec.myplugin == "3"
    assert spec.flag is True
    assert spec.notgiven is None


def test_underscore_keys_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="_secret"):
        XSpec("popen//_secret=1")
    with pytest.raises(AttributeError):
        XSpec("popen")._notthere  # noqa: B018


def test_duplicate_key_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"duplicate key 'id'.*popen//id=a//id=b"):
        XSpec("popen//id=a//id=b")
    with pytest.raises(ValueError, match="duplicate key 'env:A'"):
        XSpec("popen//env:A=1//env:A=2")


@pytest.mark.parametrize("text", ["", "popen//", "//popen", "popen////id=x", "=3"])
def test_empty_parts_raise_value_error_naming_the_spec(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("/", "/")):
        XSpec(text)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="needs a string"):
        XSpec(None)  # type: ignore[arg-type]


def test_str_repr_eq_hash_follow_the_original_string() -> None:
    text = "execmodel=main_thread_only//popen//id=gw2"
    spec = XSpec(text)
    assert str(spec) == text
    assert repr(spec) == f"<XSpec {text!r}>"
    assert spec == XSpec(text)
    assert spec != XSpec("popen//id=gw2")
    assert hash(spec) == hash(XSpec(text))
    assert {spec: 1}[XSpec(text)] == 1
    assert spec != text  # a spec is not its string


def test_attributes_assigned_later_like_pytest_xdist() -> None:
    spec = XSpec("popen")
    spec.chdir = "/tmp/x"
    spec.id = "gw7"
    assert (spec.chdir, spec.id) == ("/tmp/x", "gw7")
    spec.id = None
    assert spec.id is None
    assert str(spec) == "popen"  # the string stays what the user wrote


def test_samefilesystem() -> None:
    assert XSpec("popen")._samefilesystem()
    assert not XSpec("popen//chdir=x")._samefilesystem()
    assert not XSpec("ssh=host")._samefilesystem()
