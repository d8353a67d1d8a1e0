"""The Ray cluster launcher files: valid under Ray's own schema, and locked down
(token authentication on every node, dashboard and Jobs API on loopback only).

The checks run on each file as `ray up` sees it, merged with the provider's defaults
by Ray's `prepare_config`: a command dropped from a file would fall back to Ray's
default, which for AWS binds the dashboard to 0.0.0.0. No cluster is started.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER_FILES = {
    "aws": REPO / "cluster.yaml",
    "onprem": REPO / "pipelines" / "clusters" / "onprem.yaml",
}
STORAGE_PATTERN = {"aws": r"s3://[^/]+/\S+", "onprem": r"/\S+"}  # an S3 URI; an NFS path
TOKEN_PATH = "~/.ray/auth_token"  # where Ray looks for the token (`ray get-auth-token`)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

every_file = pytest.mark.parametrize("name", sorted(CLUSTER_FILES))


def raw(name: str) -> dict:
    return yaml.safe_load(CLUSTER_FILES[name].read_text())


def prepared(config: dict) -> dict:
    """The config as `ray up` validates and uses it."""
    return prepare_config(copy.deepcopy(config))


def ray_starts(command: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each `ray start` in a shell command line: (its environment, its arguments).
    The environment is what `export` set earlier on the line plus `NAME=value` prefixes."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    exported: dict[str, str] = {}
    starts: list[tuple[dict[str, str], list[str]]] = []
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set(";&|()"):  # the end of a simple command
            n = 0
            while n < len(words) and re.fullmatch(r"[A-Za-z_]\w*=.*", words[n]):
                n += 1
            env = {k: v for k, _, v in (w.partition("=") for w in words[:n])}
            rest = words[n:]
            if rest[:1] == ["export"]:
                exported.update({k: v for k, sep, v in (w.partition("=") for w in rest[1:])
                                 if sep})
            elif rest[:2] == ["ray", "start"]:
                starts.append(({**exported, **env}, rest[2:]))
            words = []
        else:
            words.append(token)
    return starts


def option(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in args, None if absent."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def node_starts(config: dict, role: str) -> list[tuple[dict[str, str], list[str]]]:
    starts = [s for cmd in config[f"{role}_start_ray_commands"] for s in ray_starts(cmd)]
    assert starts, f"no `ray start` in {role}_start_ray_commands"
    return starts


def test_ray_starts_parses_env_prefixes_exports_and_options():
    line = "ulimit -n 1; export A=1; B=2 ray start --head --dashboard-host 127.0.0.1 && ray stop"
    assert ray_starts(line) == [({"A": "1", "B": "2"}, ["--head", "--dashboard-host", "127.0.0.1"])]
    assert option(ray_starts(line)[0][1], "--dashboard-host") == "127.0.0.1"
    assert ray_starts("echo ray start; ray status") == []


@every_file
def test_valid_under_rays_cluster_schema(name):
    validate_config(prepared(raw(name)))


@every_file
@pytest.mark.parametrize("mutation", ["unknown top-level key", "unknown auth key", "wrong type"])
def test_rays_validator_rejects_a_broken_copy(name, mutation):
    # Guards the test above: Ray's validator must actually reject what it should.
    config = raw(name)
    if mutation == "unknown top-level key":
        config["setup_comands"] = config["setup_commands"]  # a typo: setup silently skipped
    elif mutation == "unknown auth key":
        config["auth"]["ssh_usr"] = config["auth"].pop("ssh_user")
    else:
        config["idle_timeout_minutes"] = "ten"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepared(config))


@every_file
def test_every_ray_start_uses_token_auth(name):
    config = prepared(raw(name))
    for role in ("head", "worker"):
        for env, args in node_starts(config, role):
            assert env.get("RAY_AUTH_MODE") == "token", f"{role}: ray start {' '.join(args)}"


@every_file
def test_token_file_is_mounted_on_every_node(name):
    # file_mounts go to the head and from the head to every worker.
    mounts = prepared(raw(name))["file_mounts"]
    assert TOKEN_PATH in mounts, f"{TOKEN_PATH} is not in file_mounts"
    assert os.path.expanduser(mounts[TOKEN_PATH]) == os.path.expanduser(TOKEN_PATH)


@every_file
def test_dashboard_binds_loopback_only(name):
    config = prepared(raw(name))
    for env, args in node_starts(config, "head"):
        assert option(args, "--dashboard-host") == "127.0.0.1"
    for env, args in node_starts(config, "worker"):
        assert option(args, "--dashboard-host") in LOOPBACK | {None}
    assert "0.0.0.0" not in yaml.safe_dump(config)


@every_file
def test_setup_installs_the_mounted_working_copy_with_the_cluster_extra(name):
    config = prepared(raw(name))
    working_copies = {remote for remote, local in config["file_mounts"].items() if local == "."}
    for role in ("head", "worker"):
        installs = [c for c in config[f"{role}_setup_commands"] if "pip install" in c]
        match = [re.search(r"cd (\S+) && pip install -e \"?\.\[cluster\]", c) for c in installs]
        installed = {m.group(1) for m in match if m}
        assert installed & working_copies, f"{role}: no `pip install -e .[cluster]` in {installs}"


def test_the_cluster_extra_exists():
    # pip only warns about an unknown extra, so a missing one would pass setup silently.
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("ray[default]") for req in extras.get("cluster", []))


@every_file
def test_results_storage_is_set_where_the_job_driver_runs(name):
    # `ray job submit` runs the driver on the head, in the environment of its `ray start`.
    for env, args in node_starts(prepared(raw(name)), "head"):
        assert re.fullmatch(STORAGE_PATTERN[name], env.get("RAYSWEEP_STORAGE", "")), env


def test_onprem_uses_the_local_provider_with_fixed_machines():
    provider = raw("onprem")["provider"]
    assert provider["type"] == "local"
    assert isinstance(provider["head_ip"], str) and provider["head_ip"]
    workers = provider["worker_ips"]
    assert workers and all(isinstance(ip, str) and ip for ip in workers)
    assert provider["head_ip"] not in workers
