# rq_noop.py: the RQ peer of `scripts/bench broker`.
#   rq worker -w rq.worker.SimpleWorker -u URL beltbench
#                                        one worker (RQ runs one job at a
#                                        time per worker: the benchmark
#                                        starts one per slot)
#   python3 rq_noop.py submit URL N      enqueues N noop jobs (enqueue_many,
#                                        1000 at a time) and waits until
#                                        the finished registry holds all of
#                                        them; prints seconds
import sys
import time

from redis import Redis
from rq import Queue
from rq.registry import FinishedJobRegistry

import rq_noop_job

if __name__ == "__main__" and sys.argv[1:2] == ["submit"]:
    conn = Redis.from_url(sys.argv[2])
    n = int(sys.argv[3])
    q = Queue("beltbench", connection=conn)
    reg = FinishedJobRegistry(queue=q)
    t0 = time.monotonic()
    for base in range(0, n, 1000):
        q.enqueue_many([Queue.prepare_data(rq_noop_job.noop, (i,))
                        for i in range(base, min(n, base + 1000))])
    while reg.count < n:
        time.sleep(0.01)
    print("%.3f" % (time.monotonic() - t0))
