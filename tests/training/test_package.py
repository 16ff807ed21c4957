import subprocess
import sys


def test_serving_can_load_models_without_scikit_learn_or_matplotlib():
    code = (
        "import sys; from aicash.training import load_model, gate; "
        "assert callable(gate) and callable(load_model); "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'kfp', 'feast', 'bentoml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
