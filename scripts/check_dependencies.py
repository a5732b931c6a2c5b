#!/usr/bin/env python3
"""Supply-chain checks that need no advisory database: every external crate in Cargo.lock comes
from crates.io and is under a license on the allow-list (an SPDX expression is allowed when
some choice of its OR branches uses allowed licenses only). What `cargo deny check licenses
sources` would check; its advisory check needs GitHub, out of this environment's reach.

Usage: scripts/check_dependencies.py [--self-test]
"""
import json
import re
import subprocess
import sys

# Permissive licenses, compatible with shipping Quiver under Apache-2.0.
ALLOWED = {
    "0BSD", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC0-1.0", "ISC", "MIT",
    "Unicode-3.0", "Unicode-DFS-2016", "Unlicense", "Zlib",
}
# Exceptions that only widen what a license allows.
ALLOWED_EXCEPTIONS = {"LLVM-exception"}
REGISTRIES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)


def tokens(expression):
    # Old crates write "MIT/Apache-2.0" for "MIT OR Apache-2.0".
    return re.findall(r"\(|\)|[A-Za-z0-9.+-]+", expression.replace("/", " OR "))


def allowed(expression):
    """Whether the SPDX `expression` can be satisfied with allowed licenses alone."""
    items = tokens(expression)
    position = 0

    def peek():
        return items[position] if position < len(items) else None

    def take():
        nonlocal position
        position += 1
        return items[position - 1]

    def any_of():
        result = all_of()
        while peek() == "OR":
            take()
            result = all_of() or result
        return result

    def all_of():
        result = one()
        while peek() == "AND":
            take()
            result = one() and result
        return result

    def one():
        token = take()
        if token == "(":
            result = any_of()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expression!r}")
            return result
        if token in ("AND", "OR", "WITH", ")"):
            raise ValueError(f"unexpected {token!r} in {expression!r}")
        ok = token in ALLOWED
        if peek() == "WITH":
            take()
            exception = take()
            ok = ok and exception in ALLOWED_EXCEPTIONS
        return ok

    result = any_of()
    if position != len(items):
        raise ValueError(f"trailing {items[position]!r} in {expression!r}")
    return result


def self_test():
    assert allowed("MIT OR Apache-2.0")
    assert allowed("MIT/Apache-2.0")
    assert allowed("(MIT OR Apache-2.0) AND Unicode-3.0")
    assert allowed("Apache-2.0 WITH LLVM-exception OR MIT")
    assert allowed("MIT OR Apache-2.0 OR LGPL-2.1-or-later")
    assert not allowed("GPL-3.0-only")
    assert not allowed("MIT AND GPL-2.0-only")
    assert not allowed("GPL-2.0-only WITH Classpath-exception-2.0")
    for bad in ("MIT AND", "(MIT", "MIT)"):
        try:
            allowed(bad)
        except (ValueError, IndexError):
            continue
        raise AssertionError(f"{bad!r} parsed")
    print("check_dependencies: self-test passed")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    workspace = set(metadata["workspace_members"])
    problems = []
    external = 0
    for package in metadata["packages"]:
        if package["id"] in workspace:
            continue
        external += 1
        name = f'{package["name"]} {package["version"]}'
        source = package.get("source") or "a path outside the workspace"
        if not source.startswith(REGISTRIES):
            problems.append(f"{name}: comes from {source}, not crates.io")
        license = package.get("license")
        if not license:
            problems.append(f"{name}: states no SPDX license (license-file only)")
            continue
        try:
            if not allowed(license):
                problems.append(f"{name}: license {license!r} is not on the allow-list")
        except (ValueError, IndexError) as e:
            problems.append(f"{name}: cannot read license {license!r}: {e}")
    if problems:
        print("check_dependencies: " + str(len(problems)) + " problem(s):", file=sys.stderr)
        for problem in problems:
            print("  " + problem, file=sys.stderr)
        return 1
    print(f"check_dependencies: {external} external crates, all from crates.io under allowed licenses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
