"""verl plugin entry point (`verl.plugins` group, name `exit_verl_cpu`).

verl imports it in every process on `import verl`. It does nothing unless `VERL_PLATFORM=cpu`,
so `import verl` costs the same as without it; with `VERL_PLATFORM=cpu` it registers the CPU
path (`exit_verl.verl.cpu.register`). verl logs entry-point failures only at debug level, so
a failure here is logged as an error before it propagates.
"""

import logging
import os

if os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
    try:
        from exit_verl.verl.cpu.register import register

        register()
    except Exception:
        logging.getLogger(__name__).exception("exit_verl: registering the verl CPU path failed")
        raise
