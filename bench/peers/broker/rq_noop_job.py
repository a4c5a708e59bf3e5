# rq_noop_job.py: the job of rq_noop.py (a module of its own, so that RQ
# workers import it by name).
def noop(i):
    return None
