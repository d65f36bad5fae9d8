#!/usr/bin/env python3
"""Static checks of docker/ and tests/cluster/local_cluster.sh: what can be
checked without a Docker engine (CTest: cluster.docker_files).

  python3 tests/cluster/check_docker_files.py --jobd build/jobd --root .

- docker/compose.yaml parses (python3-yaml) and has the topology: a coordinator
  published on 127.0.0.1:8080, nodes that join it, wait for it to be healthy,
  advertise nothing by hand and share no data volume, healthchecks, the tokens
  from cluster.env.
- docker/cluster.env.example names both tokens; .dockerignore keeps .git,
  build trees and docker/cluster.env out of the build context.
- docker/Dockerfile has two stages, builds without tests, installs the
  Makefile's -dev packages, runs as a user of its own with a VOLUME, EXPOSE,
  HEALTHCHECK on /healthz and an ENTRYPOINT that runs jobd.
- Every jobd flag used by the Dockerfile, compose.yaml and local_cluster.sh is
  one that `jobd --help` lists, and compose.yaml and local_cluster.sh agree on
  the nodes' labels and the node timeout.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def flags_of(args):
    """The --flags among a list of arguments (--flag=value counts as --flag)."""
    return [a.split("=", 1)[0] for a in args if isinstance(a, str) and a.startswith("--")]


def flag_values(args, flag):
    """Every value given to `flag` in an argument list."""
    out = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(flag + "="):
            out.append(a.split("=", 1)[1])
    return out


def as_args(command):
    """A compose `command` (a list, or a string split as a shell would) as a list."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(c) for c in command]


def dockerfile_instructions(text):
    """(INSTRUCTION, arguments, stage index) per instruction, continuations joined."""
    out, cur, stage = [], "", -1
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue  # a comment inside a continued instruction
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((word, rest.strip(), stage))
        cur = ""
    return out


def check_compose(root, help_flags):
    try:
        import yaml
    except ImportError:
        check(False, "python3-yaml is missing (make deps installs it)")
        return None
    try:
        doc = yaml.safe_load(read(root, "docker/compose.yaml"))
    except yaml.YAMLError as e:
        check(False, f"docker/compose.yaml does not parse: {e}")
        return None
    services = doc.get("services") or {}
    coord, node = services.get("coordinator"), services.get("node")
    if not check(isinstance(coord, dict), "compose.yaml: no coordinator service") or \
       not check(isinstance(node, dict), "compose.yaml: no node service"):
        return None

    for name, svc in (("coordinator", coord), ("node", node)):
        build = svc.get("build") or {}
        check(isinstance(build, dict) and build.get("dockerfile") == "docker/Dockerfile"
              and build.get("context") == "..",
              f"compose.yaml: {name} must build docker/Dockerfile with the repository as context")
        env_file = svc.get("env_file")
        env_files = env_file if isinstance(env_file, list) else [env_file]
        check("cluster.env" in env_files, f"compose.yaml: {name} must read env_file cluster.env")
        hc = svc.get("healthcheck") or {}
        check("/healthz" in " ".join(as_args(hc.get("test"))),
              f"compose.yaml: {name} needs a healthcheck on /healthz")
        for flag in flags_of(as_args(svc.get("command"))):
            check(flag in help_flags, f"compose.yaml: {name} uses {flag}, which `jobd --help` lacks")

    ports = [str(p) for p in coord.get("ports") or []]
    check("127.0.0.1:8080:8080" in ports,
          "compose.yaml: the coordinator must publish 127.0.0.1:8080:8080")

    nargs = as_args(node.get("command"))
    check(flag_values(nargs, "--join") == ["http://coordinator:8080"],
          "compose.yaml: nodes must --join http://coordinator:8080")
    check("--advertise" not in flags_of(nargs),
          "compose.yaml: nodes must not --advertise (the default is what makes --scale work)")
    check(flag_values(nargs, "--label"), "compose.yaml: nodes need a --label")
    check(not node.get("ports"), "compose.yaml: nodes publish no port (--scale would collide)")
    vols = [v if isinstance(v, str) else (v or {}).get("target", "") for v in node.get("volumes") or []]
    check(not any("/var/lib/jobd" in v for v in vols),
          "compose.yaml: nodes must not mount a volume on /var/lib/jobd (they would share it)")
    check(node.get("container_name") is None and node.get("hostname") is None,
          "compose.yaml: a node with a fixed container_name or hostname cannot be scaled")
    replicas = (node.get("deploy") or {}).get("replicas")
    check(isinstance(replicas, int) and replicas >= 1, "compose.yaml: node deploy.replicas >= 1")
    dep = (node.get("depends_on") or {})
    check(isinstance(dep, dict) and (dep.get("coordinator") or {}).get("condition") == "service_healthy",
          "compose.yaml: nodes must depend on the coordinator being service_healthy")
    env = node.get("environment") or {}
    check(isinstance(env, dict) and env.get("JOBD_TOKEN") == "",
          "compose.yaml: nodes must not get the users' token (environment JOBD_TOKEN: \"\")")
    return {"coordinator": as_args(coord.get("command")), "node": nargs}


def check_dockerfile(root, help_flags):
    text = read(root, "docker/Dockerfile")
    ins = dockerfile_instructions(text)
    words = [w for w, _, _ in ins]
    stages = [a for w, a, _ in ins if w == "FROM"]
    check(len(stages) == 2 and stages[0].startswith("debian:12 ") and " AS " in stages[0].upper()
          and stages[1] == "debian:12-slim",
          "Dockerfile: two stages, debian:12 (named) then debian:12-slim")
    build_runs = " ".join(a for w, a, st in ins if w == "RUN" and st == 0)
    check("-DJOBD_TESTS=OFF" in build_runs, "Dockerfile: the build stage must pass -DJOBD_TESTS=OFF")
    check("cmake --install" in build_runs, "Dockerfile: the build stage must cmake --install")
    # The same -dev packages as the Makefile's `deps`.
    m = re.search(r"^DEB_PKGS\s*:=\s*((?:.*\\\n)*.*)$", read(root, "Makefile"), re.M)
    if check(m, "Makefile: no DEB_PKGS"):
        for pkg in m.group(1).replace("\\\n", " ").split():
            if pkg.endswith("-dev"):
                check(re.search(rf"\b{re.escape(pkg)}\b", build_runs),
                      f"Dockerfile: the build stage lacks {pkg} (the Makefile installs it)")
    check("HEALTHCHECK" in words, "Dockerfile: no HEALTHCHECK")
    hc = [a for w, a, _ in ins if w == "HEALTHCHECK"]
    check(hc and "http://127.0.0.1:8080/healthz" in hc[-1], "Dockerfile: HEALTHCHECK must GET /healthz")
    users = [a for w, a, st in ins if w == "USER" and st == 1]
    check(users and users[-1].split(":")[0] not in ("root", "0"), "Dockerfile: runtime USER must not be root")
    vols = " ".join(a for w, a, st in ins if w == "VOLUME" and st == 1)
    check("/var/lib/jobd" in vols, "Dockerfile: VOLUME /var/lib/jobd")
    check(any(w == "EXPOSE" and "8080" in a.split() for w, a, _ in ins), "Dockerfile: EXPOSE 8080")
    ep = [a for w, a, st in ins if w == "ENTRYPOINT" and st == 1]
    args = []
    if check(ep, "Dockerfile: no ENTRYPOINT"):
        try:
            args = json.loads(ep[-1])
        except ValueError:
            check(False, "Dockerfile: ENTRYPOINT must be in exec (JSON) form")
    if args and check("jobd" in args, "Dockerfile: the ENTRYPOINT must run jobd"):
        jargs = args[args.index("jobd") + 1:]
        check(flag_values(jargs, "--listen") == ["0.0.0.0:8080"], "Dockerfile: --listen 0.0.0.0:8080")
        check(flag_values(jargs, "--data-dir") == ["/var/lib/jobd"], "Dockerfile: --data-dir /var/lib/jobd")
        for flag in flags_of(jargs):
            check(flag in help_flags, f"Dockerfile: ENTRYPOINT uses {flag}, which `jobd --help` lacks")


def check_local_script(root, help_flags, compose):
    text = read(root, "tests/cluster/local_cluster.sh")
    check("docker/compose.yaml" in text, "local_cluster.sh must point to docker/compose.yaml")
    check("tests/cluster/local_cluster.sh" in read(root, "docker/compose.yaml"),
          "compose.yaml must point to tests/cluster/local_cluster.sh")
    # jobd's arguments are the arrays named *_args=( ... ).
    arrays = dict(re.findall(r"\b(\w+)_args=\(([^)]*)\)", text))
    check("coordinator" in arrays and "node" in arrays,
          "local_cluster.sh: coordinator_args=( ... ) and node_args=( ... ) hold jobd's arguments")
    for name, body in arrays.items():
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", body):
            check(flag in help_flags, f"local_cluster.sh: {name} uses {flag}, which `jobd --help` lacks")
    node = arrays.get("node", "")
    for flag in ("--join", "--advertise", "--label", "--listen", "--data-dir"):
        check(flag in node, f"local_cluster.sh: nodes need {flag}")
    if compose:
        # In step with compose.yaml: the same labels and node timeout.
        shell_vars = dict(re.findall(r"^(NODE_LABEL|NODE_TIMEOUT)=(\S+)$", text, re.M))
        check(flag_values(compose["node"], "--label") == [shell_vars.get("NODE_LABEL")],
              "local_cluster.sh NODE_LABEL and the compose nodes' --label differ")
        check(flag_values(compose["coordinator"], "--node-timeout") == [shell_vars.get("NODE_TIMEOUT")],
              "local_cluster.sh NODE_TIMEOUT and the compose coordinator's --node-timeout differ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobd", required=True, help="the built jobd binary")
    ap.add_argument("--root", required=True, help="the repository")
    a = ap.parse_args()

    out = subprocess.run([a.jobd, "--help"], capture_output=True, text=True, timeout=10)
    check(out.returncode == 0, f"jobd --help exited {out.returncode}")
    help_flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.stdout + out.stderr))
    check("--listen" in help_flags, "jobd --help lists no --listen")

    env = read(a.root, "docker/cluster.env.example")
    for key in ("JOBD_TOKEN", "JOBD_CLUSTER_TOKEN"):
        check(re.search(rf"^{key}=\S", env, re.M), f"cluster.env.example: no {key}=")
    ignore = read(a.root, ".dockerignore").split()
    for pat in (".git", "docker/cluster.env"):
        check(pat in ignore, f".dockerignore must list {pat}")
    check(any(p.startswith("build") for p in ignore), ".dockerignore must list the build trees")

    compose = check_compose(a.root, help_flags)
    check_dockerfile(a.root, help_flags)
    check_local_script(a.root, help_flags, compose)

    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    print("ok: docker/ and tests/cluster/local_cluster.sh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
