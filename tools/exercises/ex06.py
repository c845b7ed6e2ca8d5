"""Source of exercises/06_ablation_new_radix.ipynb."""
from tools.nb import code, execute, exercise_metadata, md, setup_cell, write

PATH = "exercises/06_ablation_new_radix.ipynb"
write(PATH, [
    md("""
# Exercise 6: a radix that Table I left out

*Chapter 6.* The report's Table I tries radix 0, 1 and 2. Train a ResNeSt-14 with
a radix it did not try, next to the Table I baseline `ResNeSt-14-2s1x64d` trained
the same way (same images, epochs and seeds), and decide whether the difference
is larger than the spread between seeds.

The defaults are small so the exercise runs on a laptop CPU in about a minute; an
instructor can raise `images`, `epochs` and `seeds` for a class with GPUs.
"""),
    setup_cell(),
    code("""
radix = 4        # a radix not in Table I (it must divide the width, 64)
images = 400     # training images (class-balanced subset of CIFAR-10's 45,000)
epochs = 1
seeds = 2        # seeds 0 .. seeds-1 for each model
""", tags=["parameters"]),
    code("""
import tempfile
import course_lib

results = tempfile.mkdtemp(prefix="ex06-")          # this exercise's own records
scale = dict(recipe="report", images=images, epochs=epochs, val_size=0, test_images=500, results_dir=results,
             runs_dir=results, progress=False)
"""),
    md("""
**Task.** (1) Set `new_name` to the report-style name of a ResNeSt-14 with your
radix, cardinality 1 and width 64. (2) Write `compare(new, base)`: given two lists
of test accuracies (one per seed) it returns `(diff, spread, verdict)` where `diff`
is the difference of the means (new minus base), `spread` is the pooled standard
deviation $\\sqrt{(s_1^2 + s_2^2)/2}$ of the two samples (with the $n-1$ denominator),
and `verdict` is `"larger than the seed spread"` when $|\\text{diff}| > 2 \\cdot
\\text{spread}$ and `"within the seed spread"` otherwise.
"""),
    code("""
import statistics

### BEGIN SOLUTION
new_name = f"ResNeSt-14-{radix}s1x64d"
### END SOLUTION


def compare(new, base):
    ### BEGIN SOLUTION
    diff = statistics.mean(new) - statistics.mean(base)
    spread = ((statistics.variance(new) + statistics.variance(base)) / 2) ** 0.5
    verdict = "larger than the seed spread" if abs(diff) > 2 * spread else "within the seed spread"
    return diff, spread, verdict
    ### END SOLUTION
""", tags=["solution", "hide-input"]),
    code("""
new = [course_lib.run(new_name, seed=s, **scale)["test_acc"] for s in range(seeds)]
base = [course_lib.run("ResNeSt-14-2s1x64d", seed=s, **scale)["test_acc"] for s in range(seeds)]
diff, spread, verdict = compare(new, base)
print(f"{new_name}: {[round(a, 3) for a in new]}   ResNeSt-14-2s1x64d: {[round(a, 3) for a in base]}")
print(f"difference {diff:+.3f}, seed spread {spread:.3f}: {verdict}")
"""),
    code("""
import statistics
from course_lib import load_results
from course_lib.check import check

records = load_results(results)
check("model_name", lambda: new_name == f"ResNeSt-14-{radix}s1x64d")
check("trained", lambda: sorted(set(records["model"])) == sorted({new_name, "ResNeSt-14-2s1x64d"}))
d = statistics.mean(new) - statistics.mean(base)
s = ((statistics.variance(new) + statistics.variance(base)) / 2) ** 0.5
check("difference", lambda: abs(diff - d) < 1e-9)
check("spread", lambda: abs(spread - s) < 1e-9)
check("verdict", lambda: verdict == ("larger than the seed spread" if abs(d) > 2 * s else "within the seed spread"))
check("verdict_rule", lambda: compare([0.5, 0.52], [0.4, 0.41])[2] == "larger than the seed spread"
      and compare([0.5, 0.6], [0.45, 0.58])[2] == "within the seed spread")
""", tags=["check", "hide-input"]),
])
exercise_metadata(PATH, title="A radix that Table I left out", chapter=6,
                  checks=["model_name", "trained", "difference", "spread", "verdict", "verdict_rule"],
                  time_limit=600,
                  parameters={"radix": {"choices": [4, 8]}, "images": {"min": 100, "max": 45_000},
                              "epochs": {"min": 1, "max": 20}, "seeds": {"min": 2, "max": 5}})
execute(PATH)
