# -*- coding: utf-8 -*-
# A stdout callback for machine consumers: prints nothing while the play runs and one JSON document at
# the end: the recap per host, the first failure per host (task name + a short message) and the custom
# stats the role publishes (set_stats). Unlike the json callback it never echoes module arguments or full
# results, so what the controller reads back is small and free of task output.
# Everything it prints is data: task names are the role's own constant strings, messages and custom stats
# come from results (Ansible marks what a host returns unsafe) and are serialised with json.dumps, never
# templated; the controller parses the document with JSON.parse and uses the strings as text
# (test/security/template-injection.test.ts, part c).
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ao_recap
type: stdout
short_description: one compact JSON recap for agent-onboarding
description:
  - Prints a single JSON object after the run with per-host counts, failures and custom stats.
"""

import json

from ansible.plugins.callback import CallbackBase

MAX_MSG = 400


def _short(text):
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MSG else text[: MAX_MSG - 1] + "\u2026"


def _message(result):
    res = result._result or {}
    if res.get("censored"):
        return "output hidden (no_log)"
    for key in ("msg", "stderr", "reason", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            if isinstance(value, list):
                value = " ".join(str(v) for v in value)
            return _short(value)
    return "failed"


# The role's last task: a host that has run it is done (with the free strategy, long before the others may be).
DONE_TASK = "Publish the report"
COUNTS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "ao_recap"

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._failures = {}
        self._counts = {}

    def _count(self, result, key):
        host = result._host.get_name()
        c = self._counts.setdefault(host, dict((k, 0) for k in COUNTS))
        c[key] += 1
        return host, c

    def v2_runner_on_ok(self, result):
        host, c = self._count(result, "ok")
        if result._result.get("changed"):
            c["changed"] += 1
        if result._task.get_name() == DONE_TASK:
            # One line as soon as a host is done, so the controller can answer for it without waiting for the run.
            stats = result._result.get("ansible_stats") or {}
            doc = {"ao_host_done": host, "counts": c, "custom": stats.get("data") or {}}
            self._display.display(json.dumps(doc, sort_keys=True, default=str), screen_only=True)

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def _record(self, result, kind):
        host = result._host.get_name()
        # The first failure is the cause; later ones (handlers, rescue) are consequences.
        if host not in self._failures:
            self._failures[host] = {
                "kind": kind,
                "task": result._task.get_name(),
                "message": _message(result),
            }

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_runner_item_on_failed(self, result):
        self._record(result, "failed")

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed.keys()):
            s = stats.summarize(host)
            hosts[host] = {
                "ok": s["ok"],
                "changed": s["changed"],
                "failed": s["failures"],
                "unreachable": s["unreachable"],
                "skipped": s["skipped"],
                "rescued": s["rescued"],
                "ignored": s["ignored"],
            }
        custom = {k: v for k, v in (stats.custom or {}).items() if k != "_run"}
        doc = {"ao_recap": 1, "hosts": hosts, "failures": self._failures, "custom": custom}
        self._display.display(json.dumps(doc, sort_keys=True, default=str), screen_only=True)
