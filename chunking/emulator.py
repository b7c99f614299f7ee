"""The local emulator: the real state-machine definition, run end to end on this machine.

moto's Step Functions interpreter executes ``statemachine/conflict_map.asl.json`` with its placeholders
filled the way the template's ``DefinitionSubstitutions`` fill them in AWS. ``lambda:invoke`` tasks are
routed in-process to the handlers in ``handlers/``; poller threads stand in for the SQS event source
mapping (batch size, partial batch failures, visibility timeout, ``maxReceiveCount`` to a dead-letter
queue, one thread per concurrent worker). The database is real.

The emulated dead-letter queue outlives the process: its messages are saved under the state folder when
the emulator closes and restored when the next one opens, so ``redrive --local`` finds them."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import gc
import hashlib
import heapq
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from chunking import runtime
from chunking.db import PROJECT_ROOT
from chunking.errors import ConfigError
from chunking.observability import emf_records
from chunking.queues import read_dead_letters
from chunking.runner import wait_for

REGION = "us-east-1"
ACCOUNT = "123456789012"
ASL_PATH = PROJECT_ROOT / "statemachine" / "conflict_map.asl.json"
STATE_MACHINE_NAME = "conflict-map"
QUEUE_NAME = "conflict-map-chunks"
DLQ_NAME = "conflict-map-chunks-dlq"
IDEMPOTENCY_TABLE_NAME = "conflict-map-idempotency"
SERVICE_NAME = "conflict-map"

# The Lambda functions of template.yaml: logical id -> handler, and the substitution that carries its ARN.
FUNCTIONS = {
    "ValidateConfigFunction": "handlers.validate_config.lambda_handler",
    "StageVisitsFunction": "handlers.stage_visits.lambda_handler",
    "PlanChunksFunction": "handlers.plan_chunks.lambda_handler",
    "ReconcileRunFunction": "handlers.reconcile_run.lambda_handler",
    "ChunkWorkerFunction": "handlers.chunk_worker.lambda_handler",
}
WORKER_FUNCTION = "ChunkWorkerFunction"  # invoked by the queue's event source mapping, not by the state machine


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"


def fill_placeholders(definition: str, substitutions: dict[str, str]) -> str:
    """Replace every ``${Name}``, as CloudFormation does with DefinitionSubstitutions; unknown names fail."""
    missing = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition)) - set(substitutions))
    if missing:
        raise ConfigError(f"state machine placeholders without a substitution: {', '.join(missing)}")
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: substitutions[m.group(1)], definition)


@dataclasses.dataclass
class LambdaContext:
    """What Lambda hands a handler: name, ARN, request id, memory, and the time left."""

    function_name: str
    timeout_s: int
    memory_limit_in_mb: int = 512  # template.yaml: MemorySize
    aws_request_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.invoked_function_arn = function_arn(self.function_name)
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = threading.current_thread().name  # one per emulated container
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclasses.dataclass(frozen=True)
class LocalOptions:
    max_concurrency: int = 2
    batch_size: int = 1
    max_receive_count: int = 5
    worker_timeout_s: int = 300
    retry_base_ms: int = 500
    retry_max_ms: int = 5_000
    visibility_timeout_s: int | None = None  # default: worker timeout + 30 s (AWS: at least 6x)
    # Workers and the execution's follower wake on the events the emulator sees (a message sent, a message's
    # visibility ending, an invocation or the execution ending: :class:`Doorbell`); this is only the longest
    # they sleep without one, a safety net that is never on the critical path.
    poll_interval_s: float = 5.0
    retry_time_scale: float = 1.0  # ETL_LOCAL_RETRY_SCALE: the state machine's Retry waits, scaled (drills)


class Doorbell:
    """Rung on every event the emulator sees; waiters sleep until the next ring or a due time passes.

    ``rings`` is read before looking (receiving, describing); :meth:`wait` then returns at once if a ring came
    in between, so no event is lost. :meth:`due` records a time at which something becomes ready without a
    ring (a message's visibility timeout ending)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.rings = 0
        self._due: list[float] = []

    def ring(self) -> None:
        with self._cond:
            self.rings += 1
            self._cond.notify_all()

    def due(self, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._due, time.monotonic() + max(0.0, seconds))
            self._cond.notify_all()

    def wait(self, since: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.rings == since:
                now = time.monotonic()
                while self._due and self._due[0] <= now:
                    heapq.heappop(self._due)
                    return
                until = min([deadline, *self._due[:1]])
                if until <= now:
                    return
                self._cond.wait(until - now)


class LogSink:
    """Where the handlers' output goes locally, as CloudWatch Logs would take it: JSON log lines and EMF
    metric lines, appended to a file (or dropped), the EMF records also kept for the run's summary."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.metric_records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._partial = threading.local()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, text: str) -> int:
        pending = getattr(self._partial, "text", "") + text
        *lines, self._partial.text = pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            self.metric_records.extend(emf_records([line]))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_invocation = threading.local()


@contextlib.contextmanager
def _in_lambda() -> Iterator[None]:
    """Mark this thread as running a handler: what it prints is the function's output, not the CLI's."""
    _invocation.active = True
    try:
        yield
    finally:
        _invocation.active = False


class _StdoutRouter:
    """sys.stdout while the emulator runs: a handler's prints (Powertools writes EMF metrics with print)
    go to the log sink, everything else to the terminal as before."""

    def __init__(self, terminal: Any, sink: LogSink) -> None:
        self.terminal, self.sink = terminal, sink

    def write(self, text: str) -> int:
        return (self.sink if getattr(_invocation, "active", False) else self.terminal).write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)


class LocalCloud:
    """The emulated AWS side of one local session: queues, idempotency table, state machine, workers."""

    def __init__(self, database_url: str, *, options: LocalOptions | None = None, state_dir: Path,
                 env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.database_url = database_url
        self.options = options or LocalOptions()
        self.state_dir = state_dir
        self.extra_env = env or {}
        self.log_sink = LogSink(log_path)
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self.bell = Doorbell()
        self._clients: dict[str, Any] = {}
        self._pollers: list[threading.Thread] = []
        self.invocations: list[tuple[str, str]] = []  # (function, outcome): what ran, for tests and summaries
        self.queue_url = self.dlq_url = self.state_machine_arn = ""

    # --- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        """Everything the emulator needs, set up with the garbage collector paused (its imports and models make
        about a million objects and little garbage: two full collections took 85 ms of a local run's start), then
        frozen out of its reach until the emulator closes (``gc.freeze``): the first full collection of a run
        traversed all of it, 0.1 s of held GIL that stopped every thread (it fell on the Map's dispatch, between
        the plan and the first chunk). ``gc.unfreeze`` at close gives a session's leftovers back to it."""
        with _collector_paused():
            self._set_up()
            gc.freeze()
            self._stack.callback(gc.unfreeze)

    def _set_up(self) -> None:
        _leave_heap_to_the_os_at_exit()
        _defer_moto_batch()
        from moto import mock_aws
        from moto.awslambda_simple.models import LambdaSimpleBackend

        opts = self.options
        visibility = self._visibility_s = opts.visibility_timeout_s or opts.worker_timeout_s + 30
        base_env = {
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME, "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_NAMESPACE": "ConflictMap",
            "POWERTOOLS_DEV": "false",
            "DATABASE_URL": self.database_url, "ETL_ENVIRONMENT": "local",
            "ETL_MAX_RECEIVE_COUNT": str(opts.max_receive_count),
            "ETL_WORKER_TIMEOUT_S": str(opts.worker_timeout_s),
            "ETL_RETRY_BASE_MS": str(opts.retry_base_ms), "ETL_RETRY_MAX_MS": str(opts.retry_max_ms),
            "ETL_MAX_CONCURRENCY": str(opts.max_concurrency),
        }
        self._stack.enter_context(_patched_environ({**base_env, **self.extra_env}))
        self._stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                                   "lambda": {"use_docker": False}}))
        self._stack.enter_context(_process_boto3_session())
        self._stack.enter_context(_parsed_definitions_kept())
        self._stack.enter_context(_json_paths_parsed_once())
        self._stack.enter_context(_quiet_moto())
        if opts.retry_time_scale != 1.0:
            self._stack.enter_context(_scaled_retry_waits(opts.retry_time_scale))

        sqs: Any = self._client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=DLQ_NAME, Attributes={
            "MessageRetentionPeriod": str(14 * 86400)})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_url = sqs.create_queue(QueueName=QUEUE_NAME, Attributes={
            "VisibilityTimeout": str(visibility), "MessageRetentionPeriod": str(4 * 86400),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": opts.max_receive_count})})["QueueUrl"]
        dynamodb: Any = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName=IDEMPOTENCY_TABLE_NAME, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        os.environ.update({"CHUNK_QUEUE_URL": self.queue_url, "CHUNK_DLQ_URL": self.dlq_url,
                           "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE_NAME})

        # Cold containers: settings and connections are rebuilt from this environment.
        runtime.reset()
        self._handlers = {name: _load_handler(path) for name, path in FUNCTIONS.items()}
        self._route_logs()
        router = _StdoutRouter(sys.stdout, self.log_sink)
        self._stack.callback(setattr, sys, "stdout", sys.stdout)
        sys.stdout = router

        cloud = self
        original_invoke = LambdaSimpleBackend.invoke

        def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any,  # noqa: ARG001
                   response_headers: Any) -> bytes:  # moto's LambdaSimpleBackend.invoke signature
            return cloud._invoke(function_name, body, response_headers)

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
        self._stack.callback(setattr, LambdaSimpleBackend, "invoke", original_invoke)
        self._ring_on_events()
        self._stack.enter_context(_shared_interpreter_clients())

        definition = fill_placeholders(ASL_PATH.read_text(), self.substitutions())
        sfn: Any = self._client("stepfunctions")
        self.state_machine_arn = sfn.create_state_machine(
            name=STATE_MACHINE_NAME, definition=definition,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/conflict-map-state-machine")["stateMachineArn"]
        self._restore_dead_letters()
        self._stack.callback(self._save_dead_letters)
        self._stack.callback(runtime.reset)
        self._stack.callback(self.log_sink.close)
        self._stack.callback(self._clients.clear)  # bound to this mock_aws session

    @property
    def metric_records(self) -> list[dict[str, Any]]:
        """The EMF records the handlers wrote so far (what CloudWatch would turn into metrics)."""
        return list(self.log_sink.metric_records)

    def substitutions(self) -> dict[str, str]:
        """The values template.yaml's DefinitionSubstitutions give the placeholders, for this emulator."""
        subs = {f"{name}Arn": function_arn(name) for name in FUNCTIONS if name != WORKER_FUNCTION}
        subs["ChunkQueueUrl"] = self.queue_url
        return subs

    def start_workers(self) -> None:
        """Start the event source mapping: one poller per concurrent worker."""
        for index in range(self.options.max_concurrency):
            thread = threading.Thread(target=self._poll, name=f"chunk-worker-{index + 1}", daemon=True)
            thread.start()
            self._pollers.append(thread)

    def stop_taking_chunks(self) -> None:
        """The workers finish what they hold and take no new message (a stopping driver)."""
        self._stop.set()
        self.bell.ring()

    def stop_workers(self) -> None:
        self._stop.set()
        self.bell.ring()
        for thread in self._pollers:
            thread.join(timeout=self.options.worker_timeout_s)
        self._pollers.clear()
        self._stop.clear()

    def close(self) -> None:
        self.stop_workers()
        self._stack.close()

    # --- executions ------------------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        """One client per service for this session (botocore clients are thread-safe)."""
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
        return client

    def start_execution(self, name: str, payload: dict[str, Any]) -> str:
        sfn: Any = self._client("stepfunctions")
        return str(sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name,
                                       input=json.dumps(payload))["executionArn"])

    def describe(self, execution_arn: str) -> dict[str, Any]:
        sfn: Any = self._client("stepfunctions")
        return dict(sfn.describe_execution(executionArn=execution_arn))

    def wait(self, execution_arn: str, on_tick: Callable[[], None] | None = None,
             interval_s: float | None = None) -> dict[str, Any]:
        """Block until the execution ends, calling ``on_tick`` after every event (an invocation ended, a
        message was sent) and at least every ``interval_s``; it wakes the moment the execution ends."""
        seen = self.bell.rings

        def describe(arn: str) -> dict[str, Any]:
            nonlocal seen
            seen = self.bell.rings
            return self.describe(arn)

        return wait_for(describe, execution_arn, on_tick,
                        self.options.poll_interval_s if interval_s is None else interval_s,
                        wake=lambda timeout: self.bell.wait(seen, timeout))

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn: Any = self._client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    # --- the dead-letter queue ---------------------------------------------------------------------------------

    def dead_letters(self, *, delete: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every message in the DLQ (see :func:`chunking.queues.read_dead_letters`)."""
        return read_dead_letters(self._client("sqs"), self.dlq_url, delete=delete)

    def _dlq_file(self) -> Path:
        digest = hashlib.sha256(_without_password(self.database_url).encode()).hexdigest()[:12]
        return self.state_dir / f"dead-letters-{digest}.json"

    def _restore_dead_letters(self) -> None:
        path = self._dlq_file()
        if not path.is_file():
            return
        sqs: Any = self._client("sqs")
        for letter in json.loads(path.read_text()):
            attributes = {k: {"DataType": "String", "StringValue": str(v)}
                          for k, v in letter.get("attributes", {}).items() if v not in (None, "")}
            sqs.send_message(QueueUrl=self.dlq_url, MessageBody=letter["raw_body"], MessageAttributes=attributes)

    def _save_dead_letters(self) -> None:
        letters = self.dead_letters()
        path = self._dlq_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(letters, indent=1, default=str))

    # --- Lambda ------------------------------------------------------------------------------------------------

    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        logical_id = function_name.rsplit(":", 1)[-1]
        handler = self._handlers.get(logical_id)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException",
                               "errorMessage": f"no function {function_name}"}).encode()
        event = json.loads(body) if body else {}
        try:
            with _in_lambda():
                result = handler(event, LambdaContext(logical_id, self.options.worker_timeout_s))
        except Exception as exc:  # noqa: BLE001 - as Lambda does: any exception is the invocation's error
            self.invocations.append((logical_id, type(exc).__name__))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                               "stackTrace": traceback.format_tb(exc.__traceback__)[-5:]}).encode()
        finally:
            self.bell.ring()
        self.invocations.append((logical_id, "ok"))
        return json.dumps(result, default=str).encode()

    def _poll(self) -> None:
        """One worker of the event source mapping: receive a batch, invoke, delete what succeeded."""
        sqs: Any = self._client("sqs")
        handler = self._handlers[WORKER_FUNCTION]
        while not self._stop.is_set():
            seen = self.bell.rings
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.options.batch_size,
                                           AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            if not messages:
                self.bell.wait(seen, self.options.poll_interval_s)
                continue
            self.bell.due(self._visibility_s)  # unless deleted or given another timeout, they come back then
            event = {"Records": [_sqs_record(m, self.queue_url) for m in messages]}
            try:
                with _in_lambda():
                    reply = handler(event, LambdaContext(WORKER_FUNCTION, self.options.worker_timeout_s))
                failed = {f["itemIdentifier"] for f in (reply or {}).get("batchItemFailures", [])}
                self.invocations.append(("ChunkWorkerFunction", "ok" if not failed else "partial"))
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: every message comes back
                self.invocations.append(("ChunkWorkerFunction", type(exc).__name__))
                failed = {m["MessageId"] for m in messages}
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.bell.ring()

    def _ring_on_events(self) -> None:
        """Ring the doorbell on the emulated services' events: a message sent to a queue, a message given a
        new visibility timeout (due when it ends), and an execution ending (moto's interpreter reports it to
        the execution's worker communication). Restored when the emulator closes."""
        from moto.sqs.models import SQSBackend
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

        bell = self.bell
        send, change, terminated = (SQSBackend.send_message, SQSBackend.change_message_visibility,
                                    BaseExecutionWorkerCommunication.terminated)

        def send_message(backend: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return send(backend, *args, **kwargs)
            finally:
                delay = kwargs.get("delay_seconds") or 0
                bell.due(float(delay)) if delay else bell.ring()

        def change_message_visibility(backend: Any, queue_name: str, receipt_handle: str,
                                      visibility_timeout: int) -> None:
            try:
                change(backend, queue_name, receipt_handle, visibility_timeout)
            finally:
                bell.due(float(visibility_timeout))

        def execution_terminated(comm: Any) -> None:
            try:
                terminated(comm)
            finally:
                bell.ring()

        for cls, name, patched, original in (
                (SQSBackend, "send_message", send_message, send),
                (SQSBackend, "change_message_visibility", change_message_visibility, change),
                (BaseExecutionWorkerCommunication, "terminated", execution_terminated, terminated)):
            setattr(cls, name, patched)
            self._stack.callback(setattr, cls, name, original)

    def _route_logs(self) -> None:
        """Send the handlers' JSON log lines (Powertools-formatted) to the sink instead of this terminal."""
        from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

        for name in list(logging.root.manager.loggerDict):
            for h in logging.getLogger(name).handlers:
                if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, BasePowertoolsFormatter):
                    self._stack.callback(_swap_stream, h, h.stream)
                    _swap_stream(h, self.log_sink)


_exit_hook_registered = False


def _leave_heap_to_the_os_at_exit() -> None:
    """moto's interpreter and models leave a large object graph (the parsed ASL, the service models): the
    interpreter's last garbage collection at exit traversed it for about 0.4 s of a 2 s local run. At exit
    (atexit runs before that collection, after everything else) the heap is frozen, and the OS frees it."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(gc.freeze)
        _exit_hook_registered = True


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _defer_moto_batch() -> None:
    """moto's Step Functions interpreter imports every service integration it knows; its AWS Batch one needs one
    enum from ``moto.batch.utils``, but importing that runs ``moto/batch/__init__.py``, which imports Batch's
    models and with them all of EC2's (EC2's region and zone tables build three boto3 Sessions): 0.7 to 1.0 s of
    a local run's start, for an integration this state machine never uses. So ``moto.batch`` is registered as
    its package without running its ``__init__``: its submodules import from the real directory as usual, and
    any other name (``batch_backends``, when something asks moto for the Batch backend) imports the real
    ``moto.batch.models`` on first use. Process-wide and idempotent; nothing to restore."""
    if "moto.batch" in sys.modules:
        return
    import importlib.util

    import moto

    spec = importlib.util.find_spec("moto.batch")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)  # __path__, __spec__, __file__: not executed

    def lazy(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module("moto.batch.models"), name)

    package.__getattr__ = lazy  # type: ignore[method-assign]
    sys.modules["moto.batch"] = package
    moto.batch = package


def _swap_stream(handler: logging.StreamHandler[Any], stream: Any) -> None:
    """Point a handler at another stream without flushing the old one (it may be closed already)."""
    if getattr(stream, "closed", False):
        stream = sys.stdout
    with handler.lock or contextlib.nullcontext():
        handler.stream = stream


def _load_handler(path: str) -> Callable[..., Any]:
    module, _, attr = path.rpartition(".")
    handler: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return handler


def _sqs_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """An SQS message as the event source mapping hands it to Lambda."""
    name = queue_url.rsplit("/", 1)[-1]
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {k: {"stringValue": v.get("StringValue"), "dataType": v.get("DataType")}
                              for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody"), "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", "awsRegion": REGION,
    }


def _without_password(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1@", url)


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _quiet_moto() -> Iterator[None]:
    """moto logs every failed execution at ERROR; the CLI reports outcomes itself."""
    moto_logger = logging.getLogger("moto")
    level = moto_logger.level
    moto_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        moto_logger.setLevel(level)


@contextlib.contextmanager
def _process_boto3_session() -> Iterator[None]:
    """Inside ``mock_aws`` (which sets ``boto3.DEFAULT_SESSION`` to None, so that no client made before it is
    used), one boto3 Session for every emulator session of this process, as the default session: every client
    the emulator, moto's interpreter and the handlers build reads the service models (JSON files of 50-900 kB)
    from that session's loader, which keeps them. A new default session per emulator session parsed them again
    every time: about 0.1 s of CPU per local run after the first in one process (the benchmarks', the tests').
    The session is the one moto makes for itself, once, to list each service's regions (made after moto's
    import, so moto's request stub is among its handlers): a second one would load the endpoint tables again.
    It is the default only inside ``mock_aws`` (moto restores the previous default when it stops), so none of
    its clients can reach AWS."""
    from moto.core.base_backend import AccountSpecificBackend

    boto3.DEFAULT_SESSION = AccountSpecificBackend.get_session()
    yield


_parsed_definitions: dict[str, Any] = {}
_parse_lock = threading.Lock()


@contextlib.contextmanager
def _parsed_definitions_kept() -> Iterator[None]:
    """moto parses a definition with ANTLR when the state machine is created (to validate it) and again at
    every execution's start: about 60 ms of CPU each, on the critical path. While the emulator runs, a
    definition's parse is kept for the process (keyed by its text; a definition that fails to parse raises each
    time). Sharing it is sound: the parsed components keep no state of an evaluation (a Map's parallel items
    already share one iteration component); each execution gets its own environment."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.__dict__["parse"]

    def parse(definition: str) -> Any:
        with _parse_lock:
            parsed = _parsed_definitions.get(definition)
        if parsed is None:
            parsed = original.__func__(definition)
            with _parse_lock:
                if len(_parsed_definitions) >= 8:  # a few definitions per process at most (tests vary it)
                    _parsed_definitions.clear()
                _parsed_definitions[definition] = parsed
        return parsed

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    try:
        yield
    finally:
        AmazonStateLanguageParser.parse = original  # type: ignore[method-assign]


@functools.lru_cache(maxsize=1024)
def _parsed_json_path(parse: Callable[[str], Any], path: str) -> Any:
    return parse(path)


@contextlib.contextmanager
def _json_paths_parsed_once() -> Iterator[None]:
    """moto's interpreter parses every JSONPath of a state (InputPath, Parameters' ``.$`` fields, ResultPath,
    ItemsPath...) with a new jsonpath-ng parser each time it evaluates one: 53 parses of 28 paths, 19 ms of CPU, in
    a stale run of two chunks. While the emulator runs, each path's parse is kept for the process (keyed by the parser
    and the text). Sharing it is sound: a parsed expression is not changed by ``find`` or ``update``, which read and
    write the data given to them."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    patched = [(module, vars(module)["parse"]) for module in (json_path, result_path)]
    for module, original in patched:
        module.parse = functools.partial(_parsed_json_path, original)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, original in patched:
            module.parse = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def _shared_interpreter_clients() -> Iterator[None]:
    """moto's interpreter builds a new boto3 client for every service call a state makes (``boto_client_for``:
    each Lambda task, each SQS message of the Map), about 45 ms of CPU each, 0.3-0.5 s of a run. It builds them
    from the region and service alone (fixed test keys; it ignores the state's credentials), so for the session
    (one mock_aws) one client per region and service is built and kept; botocore clients are thread-safe, so the
    Map's parallel items share it. Each module that imported the function by name gets the shared one, and its
    own back at the end."""
    # the modules that call it for this definition's states, imported now so that their reference is patched
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils  # noqa: F401
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: F401
        state_task_service_sqs,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def shared(region: str, service: str, state_credentials: Any = None) -> Any:  # noqa: ARG001 (unused there too)
        with lock:
            if (region, service) not in clients:
                clients[region, service] = original(region, service)
            return clients[region, service]

    users = [m for name, m in list(sys.modules.items())
             if name.startswith("moto.stepfunctions.parser") and getattr(m, "boto_client_for", None) is original]
    for module in users:
        module.boto_client_for = shared  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in users:
            module.boto_client_for = original  # type: ignore[attr-defined]
        clients.clear()


@contextlib.contextmanager
def _scaled_retry_waits(scale: float) -> Iterator[None]:
    """The definition's Retry waits (IntervalSeconds, BackoffRate, MaxDelaySeconds), multiplied by ``scale`` in the
    emulator only, so a drill of an outage that outlasts a step's retries takes seconds, not minutes."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    class _ScaledTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            time.sleep(seconds * scale)

    original = retrier_decl.time  # type: ignore[attr-defined, unused-ignore]
    retrier_decl.time = _ScaledTime()  # type: ignore[assignment, attr-defined, unused-ignore]
    try:
        yield
    finally:
        retrier_decl.time = original  # type: ignore[attr-defined, unused-ignore]
