#!/usr/bin/env python3
"""check_layers.py — the layering of agent/ (CMakeLists.txt, "the layers"),
checked on what the compiler produced: every symbol a layer's library uses
from another of meshvisor's libraries must come from a layer below it.

The include paths already make an upward #include fail to compile; this
check also catches an upward call made through a local declaration, and a
layer calling a sibling (net <-> hv). Within each layer, the files must not
call each other in a cycle either (the daemon's services meet through
registration, not calls back and forth). Exits 1 and names each offending
object file and symbol, or the cycle.

usage: check_layers.py NAME=path/to/libNAME.a ...
       check_layers.py --cycles-only NAME=path/to/lib.a   (any archive)
       check_layers.py --no-test-hooks BINARY [SYMBOL]   (the product; SYMBOL, by
                       default agent_main, shows the symbol table was read)
"""

# symbols that exist only in the test builds of a layer (MV_TEST_HOOKS)
TEST_HOOKS = ("virt_test_inject_stop", "virt_inject_close")
import subprocess
import sys

# what each layer may use, besides itself (keep in step with CMakeLists.txt)
ALLOWED = {
    "mv_proto": set(),
    "mv_util": set(),
    "mv_core": {"mv_util"},
    "mv_wire": {"mv_core", "mv_util", "mv_proto"},
    "mv_net": {"mv_wire", "mv_core", "mv_util", "mv_proto"},
    "mv_hv": {"mv_util"},
    "mv_cli": {"mv_net", "mv_wire", "mv_core", "mv_util", "mv_proto"},
    "mv_daemon": {"mv_net", "mv_hv", "mv_wire", "mv_core", "mv_util", "mv_proto"},
}


def symbols(archive):
    """(defined, [(object, undefined symbol)]) of a static library."""
    out = subprocess.run(["nm", "-A", "--defined-only", "-g", archive], check=True,
                         capture_output=True, text=True).stdout
    defined = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            defined.add(parts[-1])
    out = subprocess.run(["nm", "-A", "-u", archive], check=True, capture_output=True,
                         text=True).stdout
    used = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            obj = parts[0].split(":")[1] if parts[0].count(":") >= 2 else parts[0]
            used.append((obj, parts[-1]))
    return defined, used


def object_graph(archive):
    """{object: {objects it calls}} within one static library."""
    out = subprocess.run(["nm", "-A", "--defined-only", "-g", archive], check=True,
                         capture_output=True, text=True).stdout
    owner = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].count(":") >= 2:
            owner[parts[-1]] = parts[0].split(":")[1]
    out = subprocess.run(["nm", "-A", "-u", archive], check=True, capture_output=True,
                         text=True).stdout
    graph = {o: set() for o in set(owner.values())}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].count(":") >= 2:
            obj = parts[0].split(":")[1]
            dst = owner.get(parts[-1])
            if dst is not None and dst != obj:
                graph.setdefault(obj, set()).add(dst)
    return graph


def find_cycle(graph):
    """One cycle as a list of nodes (first == last), or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def check_cycles(libs):
    bad = 0
    for name, path in libs:
        cycle = find_cycle(object_graph(path))
        if cycle:
            print("layering: call cycle in %s: %s" % (name, " -> ".join(cycle)))
            bad += 1
    return bad


def check_no_test_hooks(binary, required="agent_main"):
    out = subprocess.run(["nm", binary], check=True, capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.split()}
    if required not in names:
        print("check_layers: %s has no usable symbol table (%s not found)" % (binary, required))
        return 1
    found = sorted(h for h in TEST_HOOKS if h in names)
    if found:
        print("layering: test hooks compiled into the product: %s" % ", ".join(found))
        return 1
    print("check_layers: %s carries none of the test hooks %s" % (binary, ", ".join(TEST_HOOKS)))
    return 0


def main(argv):
    if len(argv) in (3, 4) and argv[1] == "--no-test-hooks":
        return check_no_test_hooks(*argv[2:])
    if len(argv) > 1 and argv[1] == "--cycles-only":
        pairs = [a.partition("=")[::2] for a in argv[2:]]
        bad = check_cycles(pairs)
        print("check_layers: %d archives, %d with a call cycle" % (len(pairs), bad))
        return 1 if bad else 0
    libs = {}
    paths = {}
    for arg in argv[1:]:
        name, _, path = arg.partition("=")
        if name not in ALLOWED or not path:
            print(f"check_layers: unknown layer or missing path: {arg}", file=sys.stderr)
            return 2
        libs[name] = symbols(path)
        paths[name] = path
    missing = set(ALLOWED) - set(libs)
    if missing:
        print(f"check_layers: no library given for {sorted(missing)}", file=sys.stderr)
        return 2
    owner = {}
    for name, (defined, _) in libs.items():
        for sym in defined:
            owner.setdefault(sym, name)
    bad = 0
    edges = set()
    for name, (_, used) in libs.items():
        for obj, sym in used:
            lib = owner.get(sym)
            if lib is None or lib == name:
                continue
            edges.add((name, lib))
            if lib not in ALLOWED[name]:
                print(f"layering: {name} ({obj}) uses {sym} from {lib}, which is not below it")
                bad += 1
    for a, b in sorted(edges):
        print(f"  {a} -> {b}")
    if bad:
        print(f"check_layers: {bad} upward or sideways uses")
        return 1
    if check_cycles(sorted(paths.items())):
        return 1
    print(f"check_layers: {len(libs)} layers, {len(edges)} edges, all pointing down; "
          "no call cycle within a layer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
