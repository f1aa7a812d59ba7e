"""Flower configuration (loaded with `celery flower --conf=monitoring/flowerconfig.py`).

Basic auth comes from FLOWER_BASIC_AUTH on the command line. Flower keeps /metrics and
/healthcheck open even with basic auth: never expose its port publicly.
"""

# Keep enough tasks in memory to find a recent order's steps by its id.
max_tasks = 20000
# Task kwargs carry order_id, so Flower's search box finds an order's tasks.
natural_time = False
purge_offline_workers = 300
enable_events = True
