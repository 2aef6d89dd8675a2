"""No models: goodjob_mp's tables are GoodJob's and are created by its own SQL migrations (run
from ``post_migrate``, see ``apps.py``). This module exists because Django sends
``post_migrate`` only to apps that have one."""
