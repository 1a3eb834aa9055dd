"""Runs Keras' own tests twice, on Keras and routed through fitpipe, and compares the outcomes.

Usage (from the repository root; long: about an hour on two cores)::

    python benchmarks/keras_suite/run.py [--out DIR] [--workers N] [--only keras|fitpipe]
                                         [--compare] [FILE ...]

FILE is a test file of the installed Keras, relative to ``keras/src`` (default:
:data:`FILES`). Each run is one pytest process on the TensorFlow backend, configured by
``pytest.ini`` in this folder (which loads ``keras_suite_plugin``); the fitpipe run sets
``KERAS_SUITE_ROUTE=fitpipe`` so every model's ``compile``, ``fit``, ``evaluate``,
``predict`` and ``*_on_batch`` go through ``fitpipe.Trainer``. fitpipe is imported from
``src`` of this checkout. Each run writes a JUnit XML file and a log under ``--out``;
``--compare`` only reads those files again. The script prints per-file counts and the tests
that pass on Keras but fail through fitpipe, and writes them to ``DIR/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: Keras' test files run by default, relative to ``keras/src``: the training loop, its epoch
#: iterator, the array and tf.data adapters (the data adapter tests that reach ``fit``),
#: every callback, and the three model classes.
FILES = (
    "trainers/trainer_test.py",
    "trainers/epoch_iterator_test.py",
    "trainers/data_adapters/array_data_adapter_test.py",
    "trainers/data_adapters/tf_dataset_adapter_test.py",
    "callbacks/*_test.py",
    "models/model_test.py",
    "models/functional_test.py",
    "models/sequential_test.py",
)

RUNS = ("keras", "fitpipe")


def keras_src() -> Path:
    """The ``keras/src`` folder of the installed Keras (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        raise SystemExit("keras is not installed")
    return Path(spec.origin).parent / "src"


def test_files(patterns: list[str]) -> list[Path]:
    """The test files matching ``patterns`` (globs relative to ``keras/src``), sorted."""
    src = keras_src()
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(src.glob(pattern))
        if not matched:
            raise SystemExit(f"no Keras test file matches {pattern!r} under {src}")
        files.extend(path for path in matched if path not in files)
    return files


def run(
    which: str, files: list[Path], out: Path, workers: int, src: Path, keyword: str = ""
) -> int:
    """Runs pytest once over ``files``, on Keras or routed through fitpipe.

    Args:
        which: ``"keras"`` or ``"fitpipe"``.
        files: The test files.
        out: The folder for ``{which}.xml`` and ``{which}.log``.
        workers: pytest-xdist workers (0: in the pytest process).
        src: The folder fitpipe is imported from.
        keyword: A pytest ``-k`` expression selecting tests (default: all).

    Returns:
        pytest's exit status.

    """
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src), str(HERE), str(HERE / "shim"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["KERAS_SUITE_ROUTE"] = "fitpipe" if which == "fitpipe" else ""
    workdir = out / f"{which}-cwd"  # tests that write into the working folder write here
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(HERE / "pytest.ini"),
        f"--rootdir={keras_src().parent}",
        f"--junitxml={out / f'{which}.xml'}",
        "-v",
        "-rfE",
        "-p",
        "no:randomly",
        "-n",
        str(workers),
        *(["-k", keyword] if keyword else []),
        *map(str, files),
    ]
    shown = [*command[: -len(files)], f"<{len(files)} files>"]
    print(f"[{which}] {' '.join(shown)}", flush=True)
    with open(out / f"{which}.log", "w") as log:
        return subprocess.call(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)


def calls(xml_file: Path) -> dict[str, dict[str, int]]:
    """``{test id: {"routed": n, "twinned": n}}``, as the plugin recorded them.

    Args:
        xml_file: The file pytest wrote for the fitpipe run.

    Returns:
        Per test, the training calls routed through fitpipe, and how many of them went
        through the harness' ``keras.Model`` twin of a Keras trainer that is no model.

    """
    counts: dict[str, dict[str, int]] = {}
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        found = {
            prop.get("name", ""): int(prop.get("value", "0"))
            for prop in case.iter("property")
            if prop.get("name") in ("routed", "twinned")
        }
        if found:
            counts[_test_id(case)] = found
    return counts


def _test_id(case: ET.Element) -> str:
    return f"{case.get('classname')}::{case.get('name')}"


def outcomes(xml_file: Path) -> dict[str, str]:
    """``{test id: "passed" | "failed" | "skipped"}`` from a JUnit XML file.

    Args:
        xml_file: The file pytest wrote.

    Returns:
        The outcome of every test case, errors counted as failures.

    """
    results: dict[str, str] = {}
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        test_id = _test_id(case)
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        if results.get(test_id) != "failed":  # a teardown error after a pass is a failure
            results[test_id] = outcome
    return results


def _file_of(test_id: str) -> str:
    module = test_id.split("::", 1)[0]
    parts = module.split(".")
    # classname is "src.trainers.trainer_test.TestTrainer": the module is up to "_test".
    end = next((i for i, part in enumerate(parts) if part.endswith("_test")), len(parts) - 1)
    return "/".join(parts[1 : end + 1]) + ".py"


def compare(out: Path) -> dict[str, object]:
    """Per-file counts of both runs and the tests passing on Keras but not through fitpipe.

    Args:
        out: The folder holding ``keras.xml`` and ``fitpipe.xml``.

    Returns:
        The summary written to ``summary.json``.

    """
    keras_results = outcomes(out / "keras.xml")
    fitpipe_results = outcomes(out / "fitpipe.xml")
    per_file: dict[str, dict[str, int]] = {}
    regressions: list[str] = []
    for test_id, outcome in sorted(keras_results.items()):
        counts = per_file.setdefault(
            _file_of(test_id), {"tests": 0, "keras": 0, "fitpipe": 0, "both": 0}
        )
        counts["tests"] += 1
        routed = fitpipe_results.get(test_id, "missing")
        counts["keras"] += outcome == "passed"
        counts["fitpipe"] += routed == "passed"
        if outcome == "passed":
            if routed == "passed":
                counts["both"] += 1
            else:
                regressions.append(test_id)
    totals = {
        key: sum(counts[key] for counts in per_file.values())
        for key in ("tests", "keras", "fitpipe", "both")
    }
    print(f"\n{'file':58} {'tests':>6} {'keras':>6} {'fitpipe':>8} {'both':>6}")
    for name, counts in per_file.items():
        print(
            f"{name:58} {counts['tests']:6} {counts['keras']:6} "
            f"{counts['fitpipe']:8} {counts['both']:6}"
        )
    print(
        f"{'total':58} {totals['tests']:6} {totals['keras']:6} "
        f"{totals['fitpipe']:8} {totals['both']:6}"
    )
    recorded = calls(out / "fitpipe.xml")
    both = [t for t in keras_results if keras_results[t] == fitpipe_results.get(t) == "passed"]
    reached = sum(1 for t in both if recorded.get(t, {}).get("routed", 0) > 0)
    twinned = sorted(t for t in both if recorded.get(t, {}).get("twinned", 0) > 0)
    routed_all = sum(1 for counts in recorded.values() if counts.get("routed", 0) > 0)
    print(
        f"\nOf the {len(both)} passing on both: {reached} called fitpipe, {len(twinned)} "
        f"through the twin of a Keras trainer that is no keras.Model; "
        f"{routed_all} tests in all called fitpipe"
    )
    print(f"\nPass on Keras, fail through fitpipe ({len(regressions)}):")
    for test_id in regressions:
        print(f"  {test_id}")
    summary = {
        "totals": totals,
        "per_file": per_file,
        "regressions": regressions,
        "passing_on_both_calling_fitpipe": reached,
        "passing_on_both_through_a_twin": len(twinned),
        "calling_fitpipe": routed_all,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Runs the comparison from the command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        0 (the counts are the result, not a pass or fail).

    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=list(FILES))
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--only", choices=RUNS)
    parser.add_argument("--compare", action="store_true", help="only compare earlier runs")
    parser.add_argument(
        "--fitpipe-src", type=Path, default=REPO / "src", help="where fitpipe is imported from"
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.compare:
        files = test_files(args.files)
        for which in [args.only] if args.only else RUNS:
            run(which, files, out, args.workers, args.fitpipe_src.resolve())
    if all((out / f"{which}.xml").exists() for which in RUNS):
        compare(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
