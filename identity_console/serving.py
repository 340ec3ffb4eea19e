"""The gunicorn worker class of ``gunicorn.conf.py``: gthread's event loop, each request served on it.

gunicorn's ``gthread`` worker keeps connections alive, which the token endpoint's clients need,
but hands every request from its event loop to a pool thread and the finished connection back
(three thread wake-ups and GIL hand-overs per request). With one thread per worker, as on
SQLite, the pool adds nothing but those hand-overs, and something worse: the event loop keeps
accepting connections while the pool thread is busy, so one worker can take every connection of a
client that opens them at once and serve them all on one core while the other workers idle
(measured: a py-spy profile of two workers under ``wrk -c8``, one 100 % idle; docs/performance.md).

``InlineThreadWorker`` is ``gthread`` with the request served on the event loop's own thread:

- a connection is served only once it is readable (a new connection that has sent nothing yet
  waits in the poller like a kept-alive one), so a silent client never holds the worker;
- while a worker serves a request it does not accept, so a new connection goes to a worker that
  is free (the listening socket is shared), as with gunicorn's ``sync`` worker, and kept-alive
  connections spread over the workers as they were opened;
- the worker's heartbeat stops while it serves, so gunicorn's ``timeout`` ends a request that hangs
  (with a pool thread the event loop kept beating for it).

Everything else (parsing, keep-alive, limits, graceful stop) is gthread's own code.
"""

import socket
from collections import deque
from concurrent import futures

from gunicorn.workers import gthread


def _readable(sock):
    """Whether ``sock`` has bytes to read (or is closed) now, without blocking."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset or closed: handle() reads it and closes the connection
    return True


class InlineThreadWorker(gthread.ThreadWorker):
    _queue = None  # connections to serve in the running loop of enqueue_req, while it runs

    def enqueue_req(self, conn):
        if self._queue is not None:
            # Called back by finish_request for a connection whose next request is already read
            # (pipelined): served by the loop below, not by a call inside it (a client pipelining
            # thousands of requests would otherwise exhaust the recursion limit).
            self._queue.append(conn)
            return
        self._queue = deque([conn])
        try:
            while self._queue:
                conn = self._queue.popleft()
                done = futures.Future()
                if not conn.initialized and not conn.data_ready and not _readable(conn.sock):
                    # Accepted, nothing sent yet: wait for its first bytes in the poller, never in a blocking read.
                    done.set_result(gthread._DEFER)
                else:
                    done.set_result(self.handle(conn))  # handle() answers every error itself
                self.finish_request(conn, done)
        finally:
            self._queue = None
