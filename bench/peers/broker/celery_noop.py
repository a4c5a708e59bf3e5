# celery_noop.py: the Celery peer of `scripts/bench broker`.
#   celery -A celery_noop worker -c 2 --without-gossip --without-mingle
#                                        one worker process, 2 prefork slots
#   python3 celery_noop.py submit N      sends N noop tasks and waits for
#                                        every result (Redis result backend);
#                                        prints seconds
# The Redis URL comes from BELT_BENCH_REDIS.
import os
import sys
import time

from celery import Celery

url = os.environ.get("BELT_BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("celery_noop", broker=url, backend=url)
app.conf.worker_prefetch_multiplier = 4
app.conf.result_expires = 600


@app.task
def noop(i):
    return None


if __name__ == "__main__" and sys.argv[1:2] == ["submit"]:
    n = int(sys.argv[2])
    t0 = time.monotonic()
    results = [noop.delay(i) for i in range(n)]
    for r in results:
        r.get(timeout=600)
    print("%.3f" % (time.monotonic() - t0))
