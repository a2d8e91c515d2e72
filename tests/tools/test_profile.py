"""Exec profiles: deny-by-default values, parsing with errors naming the field, narrowing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.errors import UserError
from nexus.tools.profile import SHELL_PROFILE, WORKSPACE, ExecProfile


def test_defaults_deny_everything_but_the_workspace() -> None:
    p = ExecProfile()
    assert p.read_paths == ()
    assert p.write_paths == (WORKSPACE,)
    assert p.network == "none"
    assert p.env == ()
    assert p.sandbox == "bwrap"
    assert (p.cpu_seconds, p.memory_mb, p.max_processes) == (60, 1024, 64)
    assert (p.max_output_bytes, p.max_file_mb, p.max_open_files) == (1 << 20, 256, 256)
    assert p.max_write_mb == 1024
    assert p == SHELL_PROFILE


def test_round_trip_through_dict() -> None:
    p = ExecProfile(
        read_paths=("/data", "$WORKSPACE/cache"),
        write_paths=("$WORKSPACE", "/scratch"),
        network=("pypi.org:443", "10.0.0.1:8080", "[::1]:80"),
        cpu_seconds=5,
        memory_mb=128,
        wall_seconds=2.5,
        max_processes=8,
        max_output_bytes=1000,
        max_file_mb=4,
        max_write_mb=16,
        max_open_files=32,
        env=("CI", "LANG"),
        sandbox="rlimits",
    )
    data = p.to_dict()
    assert data["network"] == ["pypi.org:443", "10.0.0.1:8080", "[::1]:80"]
    assert ExecProfile.from_dict(data, "test") == p
    assert ExecProfile().to_dict()["network"] == "none"


def test_fields_left_out_come_from_the_base() -> None:
    base = ExecProfile(cpu_seconds=7, env=("CI",))
    p = ExecProfile.from_dict({"memory_mb": 64}, "here", base=base)
    assert (p.cpu_seconds, p.memory_mb, p.env) == (7, 64, ("CI",))
    assert ExecProfile.from_dict({}, "here") == ExecProfile()
    assert ExecProfile.from_dict({"network": []}, "here").network == "none"
    assert ExecProfile.from_dict({"network": None}, "here").network == "none"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"cpu": 1}, "unknown field 'cpu'"),
        ({"read_paths": "/data"}, "field 'read_paths': must be a list of strings"),
        ({"read_paths": ["data"]}, "field 'read_paths': 'data' must be absolute"),
        ({"write_paths": ["/a/../etc"]}, "field 'write_paths': '/a/../etc' may not contain '..'"),
        ({"write_paths": ["$WORKSPACE/../x"]}, "may not contain '..'"),
        ({"network": "all"}, "field 'network': must be 'none' or a list"),
        ({"network": ["pypi.org"]}, "field 'network': 'pypi.org' is not 'host:port'"),
        ({"network": ["pypi.org:0"]}, "'pypi.org:0' is not 'host:port'"),
        ({"network": ["pypi.org:70000"]}, "is not 'host:port'"),
        ({"network": ["bad host:80"]}, "is not 'host:port'"),
        ({"cpu_seconds": 0}, "field 'cpu_seconds': must be a positive integer, not 0"),
        ({"cpu_seconds": 1.5}, "field 'cpu_seconds': must be a positive integer"),
        ({"memory_mb": True}, "field 'memory_mb': must be a positive integer, not True"),
        ({"memory_mb": "1G"}, "field 'memory_mb': must be a positive integer"),
        ({"wall_seconds": -1}, "field 'wall_seconds': must be a positive number"),
        ({"env": ["A-B"]}, "field 'env': 'A-B' is not an environment variable name"),
        ({"env": ["PATH"]}, "field 'env': PATH is set by the sandbox"),
        ({"sandbox": "docker"}, "field 'sandbox': must be 'bwrap' or 'rlimits'"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(UserError) as info:
        ExecProfile.from_dict(data, "flow.yaml: task 'a': profile")
    assert str(info.value).startswith("flow.yaml: task 'a': profile: ")
    assert needle in str(info.value)


def test_a_profile_must_be_a_mapping() -> None:
    with pytest.raises(UserError, match=r"where: a profile must be a mapping, not list"):
        ExecProfile.from_dict(["x"], "where")


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(UserError, match="field 'max_processes'"):
        ExecProfile(max_processes=0)
    with pytest.raises(UserError, match="field 'read_paths'"):
        ExecProfile(read_paths=("relative",))
    with pytest.raises(UserError, match="not normalised"):
        ExecProfile(read_paths=("/a//b/",))
    with pytest.raises(UserError, match="field 'network'"):
        ExecProfile(network=("nohostport",))


def test_paths_are_normalised_when_parsed() -> None:
    p = ExecProfile.from_dict({"read_paths": ["/a//b/", "$WORKSPACE/./c"]}, "w")
    assert p.read_paths == ("/a/b", "$WORKSPACE/c")


def test_resolve_expands_the_workspace(tmp_path: Path) -> None:
    p = ExecProfile(write_paths=("$WORKSPACE", "$WORKSPACE/out", "/scratch"))
    assert p.resolve(p.write_paths, tmp_path) == [tmp_path, tmp_path / "out", Path("/scratch")]


def test_narrow_takes_the_smaller_of_everything() -> None:
    tool = ExecProfile(
        read_paths=("/data", "/opt/tools"),
        write_paths=("$WORKSPACE",),
        network=("pypi.org:443", "GitHub.com:443"),
        cpu_seconds=60,
        memory_mb=512,
        env=("CI", "TOKEN"),
    )
    task = ExecProfile(
        read_paths=("/data/small", "/etc"),
        write_paths=("$WORKSPACE/out",),
        network=("github.com:443", "evil.com:443"),
        cpu_seconds=5,
        memory_mb=2048,
        env=("CI",),
    )
    n = tool.narrow(task)
    assert n.read_paths == ("/data/small",)
    assert n.write_paths == ("$WORKSPACE/out",)
    assert n.network == ("GitHub.com:443",)
    assert (n.cpu_seconds, n.memory_mb) == (5, 512)
    assert n.env == ("CI",)


def test_narrow_to_nothing_means_none() -> None:
    a = ExecProfile(network=("a.com:443",))
    assert a.narrow(ExecProfile(network=("b.com:443",))).network == "none"
    assert a.narrow(ExecProfile()).network == "none"
    assert ExecProfile().narrow(a).network == "none"


def test_rlimits_only_when_both_accept_it() -> None:
    weak, strong = ExecProfile(sandbox="rlimits"), ExecProfile()
    assert weak.narrow(strong).sandbox == "bwrap"
    assert strong.narrow(weak).sandbox == "bwrap"
    assert weak.narrow(weak).sandbox == "rlimits"


_paths = st.lists(
    st.sampled_from(["/a", "/a/b", "/a/b/c", "/d", "$WORKSPACE", "$WORKSPACE/x", "/"]),
    max_size=4,
    unique=True,
).map(tuple)
_hosts = st.lists(st.sampled_from(["a.com:1", "b.com:2", "c.com:3"]), max_size=3, unique=True)
_profiles = st.builds(
    ExecProfile,
    read_paths=_paths,
    write_paths=_paths,
    network=st.one_of(st.just("none"), _hosts.map(lambda h: tuple(h) or "none")),
    cpu_seconds=st.integers(1, 100),
    memory_mb=st.integers(1, 100),
    wall_seconds=st.floats(0.1, 100),
    max_processes=st.integers(1, 100),
    max_output_bytes=st.integers(1, 100),
    max_file_mb=st.integers(1, 100),
    max_write_mb=st.integers(1, 100),
    max_open_files=st.integers(1, 100),
    env=st.lists(st.sampled_from(["A", "B", "C"]), max_size=3, unique=True).map(tuple),
    sandbox=st.sampled_from(["bwrap", "rlimits"]),
)


def _covered(path: str, by: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in by)


@given(_profiles, _profiles)
def test_narrow_is_never_wider_than_either(a: ExecProfile, b: ExecProfile) -> None:
    n = a.narrow(b)
    for limit in (
        "cpu_seconds",
        "memory_mb",
        "wall_seconds",
        "max_processes",
        "max_output_bytes",
        "max_file_mb",
        "max_write_mb",
        "max_open_files",
    ):
        assert getattr(n, limit) == min(getattr(a, limit), getattr(b, limit))
    for name in ("read_paths", "write_paths"):
        for path in getattr(n, name):
            assert _covered(path, getattr(a, name))
            assert _covered(path, getattr(b, name))
    if n.network != "none":
        assert set(n.network) <= set(a.network) & set(b.network)
    assert set(n.env) <= set(a.env) & set(b.env)
    assert n.sandbox == "bwrap" or a.sandbox == b.sandbox == "rlimits"
    assert n.narrow(n) == n


def test_mcp_tools_are_denied_unless_every_grant_allows_them() -> None:
    from pathlib import Path

    from nexus.domain.errors import UserError
    from nexus.tools.base import ToolContext
    from nexus.tools.profile import allows_mcp_tool

    def ctx(**kw: object) -> ToolContext:
        return ToolContext("r", "t", 1, Path("."), **kw)  # type: ignore[arg-type]

    assert not allows_mcp_tool(ctx(), "git.git_status")
    assert allows_mcp_tool(ctx(grant={"mcp_tools": ["git.*"]}), "git.git_status")
    assert not allows_mcp_tool(ctx(grant={"mcp_tools": ["git.*"]}), "time.now")
    both = ctx(profile=ExecProfile(mcp_tools=("git.*",)), grant={"mcp_tools": ["git.git_log"]})
    assert allows_mcp_tool(both, "git.git_log")
    assert not allows_mcp_tool(both, "git.git_status")
    parsed = ExecProfile.from_dict({"mcp_tools": ["time.*"]}, "profile")
    assert parsed.mcp_tools == ("time.*",)
    with pytest.raises(UserError, match="not an MCP tool name"):
        ExecProfile.from_dict({"mcp_tools": ["nodot"]}, "profile")
