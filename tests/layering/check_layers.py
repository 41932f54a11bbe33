#!/usr/bin/env python3
"""check_layers.py — the layering of agent/ (CMakeLists.txt, "the layers"),
checked on what the compiler produced: every symbol a layer's library uses
from another of meshvisor's libraries must come from a layer below it.

The include paths already make an upward #include fail to compile; this
check also catches an upward call made through a local declaration, and a
layer calling a sibling (net <-> hv). Exits 1 and names each offending
object file and symbol.

usage: check_layers.py NAME=path/to/libNAME.a ...
"""
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


def main(argv):
    libs = {}
    for arg in argv[1:]:
        name, _, path = arg.partition("=")
        if name not in ALLOWED or not path:
            print(f"check_layers: unknown layer or missing path: {arg}", file=sys.stderr)
            return 2
        libs[name] = symbols(path)
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
    print(f"check_layers: {len(libs)} layers, {len(edges)} edges, all pointing down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
