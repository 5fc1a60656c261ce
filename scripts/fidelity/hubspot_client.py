#!/usr/bin/env python3
"""Reads the crm-sync simulator with HubSpot's official Python client (hubspot-api-client 12.0.0)
and prints what it saw as one JSON object, so a test can compare it with the simulator's own data.

A field the simulator renders in a shape the client cannot deserialize raises here; a status code
the client does not expect makes it return None, which this script reports as a mismatch.

Usage: hubspot_client.py --host http://127.0.0.1:PORT --token TOKEN
"""
import argparse
import json
import sys

import hubspot
from hubspot.crm.deals import PublicObjectSearchRequest, BatchReadInputSimplePublicObjectId
from hubspot.crm.objects import SimplePublicObjectInputForCreate
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    client = hubspot.Client.create(access_token=args.token, host=args.host)
    problems = []
    out = {}

    # Incremental search exactly as a connector does it: GTE on the stamp, ascending, paged by `after`.
    ids, stamps, after, pages, total = [], [], None, 0, None
    while True:
        request = PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            properties=["dealname", "dealstage", "amount", "hs_lastmodifieddate"],
            limit=100, after=after)
        page = client.crm.deals.search_api.do_search(public_object_search_request=request)
        if page is None:
            problems.append("search returned an unexpected status")
            break
        pages += 1
        total = page.total
        for deal in page.results:
            ids.append(deal.id)
            stamps.append(deal.properties["hs_lastmodifieddate"])
            if deal.updated_at is None or deal.created_at is None:
                problems.append(f"deal {deal.id} lacks createdAt/updatedAt")
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    if stamps != sorted(stamps, key=lambda s: s):
        problems.append("search results are not in hs_lastmodifieddate order")
    out["search"] = {"ids": len(ids), "distinct": len(set(ids)), "total": total, "pages": pages}

    # The list endpoint through the client's own pager, live and archived.
    live = client.crm.deals.get_all(properties=["dealname", "dealstage"])
    archived = client.crm.deals.basic_api.get_page(limit=100, archived=True)
    out["list"] = {"live": len(live), "archived_first_page": len(archived.results)}

    # Stage history newest first, as HubSpot lists property history.
    first = sorted(ids, key=int)[:10]
    batch = client.crm.deals.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": i} for i in first], properties=["dealstage"], properties_with_history=["dealstage"]))
    histories = {}
    for deal in batch.results:
        history = deal.properties_with_history["dealstage"]
        times = [entry.timestamp for entry in history]
        if times != sorted(times, reverse=True):
            problems.append(f"history of deal {deal.id} is not newest first")
        if history and history[0].value != deal.properties["dealstage"]:
            problems.append(f"newest history entry of deal {deal.id} is not its current stage")
        histories[deal.id] = len(history)
    out["history"] = histories

    # v4 associations deal -> contacts (207 when some have none).
    links = client.crm.associations.v4.batch_api.get_page(
        from_object_type="deals", to_object_type="contacts",
        batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": i} for i in first]))
    out["associations"] = {r._from.id: sorted(int(t.to_object_id) for t in r.to) for r in links.results}

    owners = client.crm.owners.owners_api.get_page(limit=100)
    out["owners"] = len(owners.results)
    pipelines = client.crm.pipelines.pipelines_api.get_all(object_type="deals")
    out["stages"] = [stage.id for stage in pipelines.results[0].stages]

    created = client.crm.objects.basic_api.create(
        object_type="tasks",
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"hs_task_subject": "Call back: stalled deal", "hs_timestamp": "2026-11-25T09:00:00.000Z",
                        "hubspot_owner_id": "101", "hs_task_status": "NOT_STARTED"},
            associations=[{"to": {"id": first[0]}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}]))
    if created is None:
        problems.append("task creation did not answer 201")
    else:
        out["created_task"] = created.id

    # A wrong token is HubSpot's 401, which the client raises as UnauthorizedException.
    bad = hubspot.Client.create(access_token="wrong", host=args.host)
    try:
        bad.crm.owners.owners_api.get_page(limit=1)
        problems.append("a wrong token was accepted")
    except hubspot.crm.owners.exceptions.UnauthorizedException:
        out["wrong_token"] = "UnauthorizedException"

    out["problems"] = problems
    print(json.dumps(out))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
