"""gunicorn settings for Instance Tracker in production.

    gunicorn -c gunicorn.conf.py

Command-line flags override these (``--bind 0.0.0.0:8000``, ``--workers 4``).
Put a reverse proxy that buffers requests in front (see the README): it also
shields the threads below from clients that send slowly.
"""

import multiprocessing
import os
import shutil
import tempfile

wsgi_app = "tracker:create_app()"
bind = ["127.0.0.1:8000"]

# Threaded workers: a client that sends its request slowly holds one thread,
# not a whole process. Two processes per core, each with 32 threads.
worker_class = "gthread"
workers = max(2, multiprocessing.cpu_count())
threads = 32
# A worker silent for this long is restarted; requests that work for minutes
# (a large import) belong in the background jobs, not in a request.
timeout = 120
graceful_timeout = 30
# Kept-alive and idle connections are closed after this many seconds.
keepalive = 5
# Workers are replaced now and then, at random moments, so no leak builds up.
max_requests = 5000
max_requests_jitter = 500

# Request line and headers: gunicorn answers 400 past these.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Access log on standard output, error log on standard error; the logger masks
# instance uuids (the registry's credentials) in every line of both.
accesslog = "-"
errorlog = "-"
loglevel = "info"
logger_class = "tracker.serving.RedactingLogger"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

# The X-Forwarded-* headers are believed only from these addresses (the reverse
# proxy); set TRUSTED_PROXIES in settings.cfg to the number of proxies in front.
forwarded_allow_ips = "127.0.0.1,::1"


# Prometheus: each worker process counts its requests into files of one folder,
# and /metrics, whichever worker answers it, adds them all up.
METRICS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
made_folders = []


def on_starting(server):
    # gunicorn 27 holds a worker after each closed connection until the client
    # closes too (up to two seconds); close plainly instead. Workers are forked
    # from here, so every one of them inherits it.
    import gunicorn.util

    from tracker.serving import close_plainly

    gunicorn.util.close_graceful = close_plainly
    if not os.environ.get(METRICS_FOLDER):
        os.environ[METRICS_FOLDER] = tempfile.mkdtemp(prefix="tracker-metrics-")
        made_folders.append(os.environ[METRICS_FOLDER])


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for folder in made_folders:
        shutil.rmtree(folder, ignore_errors=True)


# No control socket (it would be shared by every gunicorn of this user): stop
# with SIGTERM, reload the workers with SIGHUP.
control_socket_disable = True
