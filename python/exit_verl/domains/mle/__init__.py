"""Machine-learning engineering in MLE-bench's shape (docs/mle.md).

```python
from exit_verl.domains import mle
tasks = mle.tasks()                       # built-in competitions (scikit-learn data sets)
res = mle.run(tasks[0], code, timeout_s=60)   # one solution script, sandboxed and graded
res.score, res.raw, res.error
```
No verl import; the verl reward function is `exit_verl.verl.mle_reward`.
"""

from exit_verl.domains.mle.grading import SubmissionError
from exit_verl.domains.mle.metrics import METRICS, Metric, normalize, register_metric
from exit_verl.domains.mle.runner import RunResult, extract_code, run
from exit_verl.domains.mle.sandbox import (
    UNSANDBOXED_ENV,
    SandboxSettings,
    SandboxUnavailable,
    sandbox_problem,
)
from exit_verl.domains.mle.tasks import BUILTIN, Task, get_task, load_task, tasks

__all__ = [
    "BUILTIN",
    "METRICS",
    "UNSANDBOXED_ENV",
    "Metric",
    "RunResult",
    "SandboxSettings",
    "SandboxUnavailable",
    "SubmissionError",
    "Task",
    "extract_code",
    "get_task",
    "load_task",
    "normalize",
    "register_metric",
    "run",
    "sandbox_problem",
    "tasks",
]
