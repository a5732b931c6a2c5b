"""The package as users get it: a wheel built from a copy of clients/python (the checkout is
never written), holding the generated modules, installed on its own and reading features."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

from conftest import CLIENT


def test_the_wheel_installs_and_works_without_the_source_tree(dev, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("quiver_client-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("quiver/__init__.py", "quiver/py.typed", "quiver/_proto/serving/v1/serving_pb2.py",
                     "quiver/_proto/serving/v1/serving_pb2.pyi", "quiver/_proto/types/v1/types_pb2.py"):
        assert expected in names, expected
    assert not any(n.startswith(("tests/", "tools/")) for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    script = (
        "import quiver, sys\n"
        f"assert quiver.__file__.startswith({str(site)!r}), quiver.__file__\n"
        f"c = quiver.Client(online={dev.online!r}, registry={dev.registry!r}, project='pytest')\n"
        "t = c.get_features(service='model_v1', entities={'user_id': [1]}, with_status=True)\n"
        "print(t.column_names[2], t.column(2)[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "kinds:last_amount__status NOT_FOUND"
