#!/usr/bin/env python3
"""Runs the official simple-salesforce client (pinned 1.12.10) against the crm-sync Salesforce
simulator and prints a JSON summary; exits non-zero on any mismatch.

    salesforce_client.py --base-url http://127.0.0.1:PORT --token sim-token \
        [--deleted-start ISO --deleted-end ISO] [--expect-opportunities N] [--expect-history N] [--expect-deleted N]

simple-salesforce always builds https:// URLs; the session below turns them back into http for
the loopback simulator (see research/wire-formats.md, section 2.1).
"""
import argparse
import datetime as dt
import importlib.metadata
import json
import sys
from urllib.parse import urlparse

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

PINNED = "1.12.10"


class LoopbackSession(requests.Session):
    """Rewrites https://HOST:PORT to http:// and counts the query-locator pages it fetched."""

    def __init__(self, netloc):
        super().__init__()
        self.netloc = netloc
        self.locator_pages = 0

    def request(self, method, url, *args, **kwargs):
        prefix = "https://" + self.netloc
        if url.startswith(prefix):
            url = "http://" + url[len("https://"):]
        if "/query/01g" in url:
            self.locator_pages += 1
        return super().request(method, url, *args, **kwargs)


def client(base_url, token):
    netloc = urlparse(base_url).netloc
    session = LoopbackSession(netloc)
    sf = Salesforce(instance_url=base_url, session_id=token, session=session, version="59.0")
    return sf, session


def parse_time(text):
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--deleted-start")
    parser.add_argument("--deleted-end")
    parser.add_argument("--expect-opportunities", type=int)
    parser.add_argument("--expect-history", type=int)
    parser.add_argument("--expect-deleted", type=int)
    args = parser.parse_args()

    problems = []
    version = importlib.metadata.version("simple-salesforce")
    summary = {"client": "simple-salesforce", "version": version}
    if version != PINNED:
        # The wire details this checks were verified against the pinned release.
        problems.append("simple-salesforce %s is installed, expected %s" % (version, PINNED))
    sf, session = client(args.base_url, args.token)

    # Opportunities, in small pages so the client follows nextRecordsUrl several times.
    small_pages = {"Sforce-Query-Options": "batchSize=200"}
    result = sf.query_all(
        "SELECT Id, Name, StageName, Amount, CloseDate, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id",
        headers=small_pages)
    records = result["records"]
    ids = [r["Id"] for r in records]
    summary["opportunities"] = len(records)
    summary["opportunity_pages"] = session.locator_pages + 1
    if len(set(ids)) != len(ids):
        problems.append("Opportunity: %d duplicate ids across pages" % (len(ids) - len(set(ids))))
    stamps = [r["SystemModstamp"] for r in records]
    if stamps != sorted(stamps):
        problems.append("Opportunity: not in SystemModstamp order")
    if any(r.get("attributes", {}).get("type") != "Opportunity" for r in records):
        problems.append("Opportunity: records without attributes.type = Opportunity")
    if records and not all(len(i) == 18 for i in ids):
        problems.append("Opportunity: ids are not 18 characters")
    if records and session.locator_pages == 0 and len(records) > 200:
        problems.append("Opportunity: more than one page of records but nextRecordsUrl was never followed")

    # Stage history, with the default page size.
    history = sf.query_all("SELECT Id, OpportunityId, StageName, CreatedDate FROM OpportunityHistory")
    summary["history"] = len(history["records"])
    if any(not r.get("OpportunityId") or not r.get("StageName") for r in history["records"]):
        problems.append("OpportunityHistory: rows without OpportunityId or StageName")

    # Deleted opportunities: timezone-aware datetimes, as the client's date_to_iso8601 needs.
    end = parse_time(args.deleted_end) if args.deleted_end else dt.datetime.now(dt.timezone.utc)
    start = parse_time(args.deleted_start) if args.deleted_start else end - dt.timedelta(days=10)
    deleted = sf.Opportunity.deleted(start, end)
    summary["deleted"] = len(deleted.get("deletedRecords", []))
    for key in ("earliestDateAvailable", "latestDateCovered"):
        if key not in deleted:
            problems.append("deleted: no %s" % key)

    # A Task created the way the outbox creates follow-ups, then read back by SOQL.
    created = sf.Task.create({"Subject": "Fidelity follow-up", "Status": "Not Started", "ActivityDate": "2026-12-03"})
    task_id = created.get("id") if isinstance(created, dict) else None
    summary["task_created"] = bool(isinstance(created, dict) and created.get("success") is True and task_id)
    if not summary["task_created"] or not str(task_id).startswith("00T") or len(str(task_id)) != 18:
        problems.append("Task create: unexpected answer %r" % (created,))
    else:
        found = sf.query("SELECT Id, Subject, Status FROM Task WHERE Id = '%s'" % task_id)["records"]
        if [(r["Id"], r["Subject"], r["Status"]) for r in found] != [(task_id, "Fidelity follow-up", "Not Started")]:
            problems.append("Task create: the query returned %r" % (found,))

    # An expired session must raise the client's own exception class.
    expired, _ = client(args.base_url, args.token + "-expired")
    try:
        expired.query("SELECT Id FROM Opportunity")
        summary["expired_session"] = "no error"
        problems.append("expired session: the query succeeded")
    except SalesforceExpiredSession as error:
        summary["expired_session"] = type(error).__name__
        content = error.content if isinstance(error.content, list) else []
        code = content[0].get("errorCode") if content and isinstance(content[0], dict) else None
        summary["expired_session_error_code"] = code
        if code != "INVALID_SESSION_ID":
            problems.append("expired session: errorCode %r, expected INVALID_SESSION_ID" % code)
    except Exception as error:  # the wrong class is a fidelity problem, not a crash
        summary["expired_session"] = type(error).__name__
        problems.append("expired session: raised %s, expected SalesforceExpiredSession" % type(error).__name__)

    for name, expected in (("opportunities", args.expect_opportunities), ("history", args.expect_history),
                           ("deleted", args.expect_deleted)):
        if expected is not None and summary[name] != expected:
            problems.append("%s: got %d, expected %d" % (name, summary[name], expected))

    summary["problems"] = problems
    print(json.dumps(summary, sort_keys=True))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
