#!/usr/bin/env python3
"""Call the simulator with the official Alibaba Cloud Python SDKs (EDAS 2017-08-01, SAE 2019-05-06).

The simulator must already be running the built-in demo scenario; this script starts nothing.
It checks, with both signing schemes the SDKs offer (V3 ACS3-HMAC-SHA256, the default, and the
older ROA HMAC-SHA1 selected with Config(signature_algorithm='v2')), that the demo's orders come
back parsed into the SDK's models, and that a wrong secret is refused with SignatureDoesNotMatch.

Inputs (arguments win over environment variables):
  --url / SIM_URL                        http://127.0.0.1:PORT
  --access-key-id / SIM_ACCESS_KEY_ID    default demo-key-id
  --access-key-secret / SIM_ACCESS_KEY_SECRET  default demo-key-secret

Prints one PASS/FAIL line per check and a summary; exits 1 when any check failed.
"""

import argparse
import json
import os
import re
import sys
import traceback
from urllib.parse import urlparse
from urllib.request import urlopen

from alibabacloud_edas20170801 import models as edas_models
from alibabacloud_edas20170801.client import Client as EdasClient
from alibabacloud_sae20190506 import models as sae_models
from alibabacloud_sae20190506.client import Client as SaeClient
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import utils_models as openapi_models

ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

# The demo's orders that exist from the start (see crates/sim/src/demo.yaml).
EDAS_APP = "demo-edas-app"
SAE_APP = "demo-sae-app"
SAE_NAMESPACE = "cn-hangzhou:demo"
SAE_ORDERS = {
    "demo-sae-approval", "demo-sae-hiccup", "demo-sae-preparing", "demo-sae-running",
    "demo-sae-exception", "demo-sae-awaiting-confirmation", "demo-sae-waiting-next-batch",
    "demo-sae-pending-approval", "demo-sae-approved", "demo-sae-succeeded", "demo-sae-failed",
    "demo-sae-terminated", "demo-sae-system-error", "demo-sae-unknown",
}

RESULTS = []


def check(name):
    """Run one check, record PASS/FAIL with the reason."""
    def wrap(fn):
        def run(*args):
            label = name.format(*args)
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - any failure is a failed check
                RESULTS.append((label, False))
                print(f"FAIL {label}: {type(e).__name__}: {e}", flush=True)
                if os.environ.get("SDK_CHECK_VERBOSE"):
                    traceback.print_exc()
            else:
                RESULTS.append((label, True))
                print(f"PASS {label}", flush=True)
        return run
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def config(endpoint, key_id, secret, scheme):
    c = openapi_models.Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=endpoint,
        protocol="http",
        region_id="cn-hangzhou",
        read_timeout=10000,
        connect_timeout=5000,
    )
    if scheme == "roa":
        # 'v2' makes the tea-openapi client take do_roarequest: the ROA `acs` HMAC-SHA1 scheme.
        c.signature_algorithm = "v2"
    return c


def error_code(e):
    """The SDK's error code, and for SAE envelope errors the ErrorCode inside the body."""
    code = getattr(e, "code", None)
    data = getattr(e, "data", None) or {}
    return code, data.get("ErrorCode") if isinstance(data, dict) else None


@check("{0} edas ListRecentChangeOrder")
def edas_list(scheme, edas):
    resp = edas.list_recent_change_order(edas_models.ListRecentChangeOrderRequest(app_id=EDAS_APP))
    body = resp.body
    expect(resp.status_code == 200, f"HTTP {resp.status_code}")
    expect(body.code == 200, f"Code {body.code!r}")
    orders = {o.change_order_id: o for o in body.change_order_list.change_order}
    expect("demo-edas-succeeded" in orders, f"orders: {sorted(orders)}")
    ok = orders["demo-edas-succeeded"]
    expect(ok.status == 2 and ok.batch_count == 2, f"status {ok.status} batches {ok.batch_count}")
    expect(ok.co_type_code == "CoDeploy" and ok.app_id == EDAS_APP, f"{ok.co_type_code} {ok.app_id}")
    expect(ok.batch_type == "Automatic", ok.batch_type)
    expect(ZONELESS.match(ok.create_time or "") and ZONELESS.match(ok.finish_time or ""), f"{ok.create_time} {ok.finish_time}")
    expect(orders["demo-edas-unknown"].status == 42, "unknown status kept")
    expect(orders["demo-edas-awaiting-confirmation"].batch_type == "Manual", "manual batches")


@check("{0} edas GetChangeOrderInfo")
def edas_info(scheme, edas):
    resp = edas.get_change_order_info(
        edas_models.GetChangeOrderInfoRequest(change_order_id="demo-edas-partially-succeeded"))
    info = resp.body.change_order_info
    expect(resp.body.code == 200, f"Code {resp.body.code!r}")
    expect(info.status == 7 and info.change_order_id == "demo-edas-partially-succeeded", f"{info.status}")
    pipes = info.pipeline_info_list.pipeline_info
    expect([p.pipeline_status for p in pipes] == [2, 3], [p.pipeline_status for p in pipes])
    expect(all(p.start_time.isdigit() for p in pipes), "epoch-ms string start times")
    stages = pipes[1].stage_list.stage_info_dto
    expect(len(stages) == 2 and stages[1].status == 3, [s.status for s in stages])
    tasks = pipes[1].stage_detail_list.stage_detail_dto[1].task_list.task_info_dto
    expect(tasks[0].task_status == "3" and "failed" in tasks[0].task_error_message, tasks[0].to_map())
    expect(len(info.targets.items) == 2, info.targets.items)


@check("{0} edas unknown app -> InvalidAppId.NotFound")
def edas_unknown_app(scheme, edas):
    try:
        edas.list_recent_change_order(edas_models.ListRecentChangeOrderRequest(app_id="no-such-app"))
    except Exception as e:  # noqa: BLE001
        code, _ = error_code(e)
        expect(code == "InvalidAppId.NotFound", f"code {code!r}")
        return
    raise AssertionError("no error")


@check("{0} sae ListChangeOrders (all pages)")
def sae_list(scheme, sae):
    seen, page = [], 1
    while True:
        resp = sae.list_change_orders(
            sae_models.ListChangeOrdersRequest(app_id=SAE_APP, current_page=page, page_size=5))
        body = resp.body
        expect(body.success is True and body.code == "200", f"{body.success} {body.code}")
        data = body.data
        expect(data.current_page == page and data.page_size == 5, f"page {data.current_page}")
        seen += [o.change_order_id for o in data.change_order_list]
        if not data.change_order_list or data.current_page * data.page_size >= data.total_size:
            break
        page += 1
    expect(page == 3, f"{page} pages")
    expect(set(seen) == SAE_ORDERS and len(seen) == len(SAE_ORDERS), f"{sorted(seen)}")
    resp = sae.list_change_orders(sae_models.ListChangeOrdersRequest(app_id=SAE_APP, page_size=50))
    by_id = {o.change_order_id: o for o in resp.body.data.change_order_list}
    expect(by_id["demo-sae-pending-approval"].status == 11, "status 11")
    expect(by_id["demo-sae-approved"].status == 12, "status 12")
    expect(by_id["demo-sae-succeeded"].batch_type == "auto", by_id["demo-sae-succeeded"].batch_type)
    expect(ZONELESS.match(by_id["demo-sae-succeeded"].create_time), "zone-less time")


@check("{0} sae ListChangeOrders Key with a space")
def sae_key_filter(scheme, sae):
    # The SDK sends the query form-encoded (space as '+'); the signature must still match.
    resp = sae.list_change_orders(sae_models.ListChangeOrdersRequest(app_id=SAE_APP, key="Release 2.0", page_size=50))
    ids = [o.change_order_id for o in resp.body.data.change_order_list]
    expect(ids == ["demo-sae-approval"], ids)


@check("{0} sae DescribeChangeOrder")
def sae_describe(scheme, sae):
    resp = sae.describe_change_order(sae_models.DescribeChangeOrderRequest(change_order_id="demo-sae-exception"))
    d = resp.body.data
    expect(resp.body.success is True, "success")
    expect(d.status == 1 and d.sub_status == 1, f"{d.status}/{d.sub_status}")
    expect(d.app_id == SAE_APP and d.app_name == "demo-sae", f"{d.app_id} {d.app_name}")
    expect(len(d.pipelines) == 2 and isinstance(d.pipelines[0].start_time, int), d.to_map())
    expect(d.current_pipeline_id == d.pipelines[0].pipeline_id, "current pipeline")
    expect("roll back" in d.error_message, d.error_message)


@check("{0} sae DescribePipeline")
def sae_pipeline(scheme, sae):
    d = sae.describe_change_order(sae_models.DescribeChangeOrderRequest(change_order_id="demo-sae-failed")).body.data
    pid = d.pipelines[0].pipeline_id
    p = sae.describe_pipeline(sae_models.DescribePipelineRequest(pipeline_id=pid)).body.data
    expect(p.pipeline_id == pid and p.pipeline_status == 3, p.to_map())
    expect([s.status for s in p.stage_list] == [2, 3], [s.status for s in p.stage_list])
    expect("Image pull failed" in p.stage_list[1].task_list[0].error_message, "task error message")


@check("{0} sae ListNamespaceChangeOrders")
def sae_namespace(scheme, sae):
    resp = sae.list_namespace_change_orders(
        sae_models.ListNamespaceChangeOrdersRequest(namespace_id=SAE_NAMESPACE, page_size=50))
    ids = {o.change_order_id for o in resp.body.data.change_order_list}
    expect(ids == SAE_ORDERS, sorted(ids))


@check("{0} sae unknown app -> InvalidAppId.NotFound")
def sae_unknown_app(scheme, sae):
    try:
        sae.list_change_orders(sae_models.ListChangeOrdersRequest(app_id="no-such-app", current_page=1, page_size=5))
    except Exception as e:  # noqa: BLE001
        code, error = error_code(e)
        expect(error == "InvalidAppId.NotFound", f"code {code!r} ErrorCode {error!r}")
        return
    raise AssertionError("no error")


@check("{0} wrong secret -> SignatureDoesNotMatch")
def wrong_secret(scheme, edas, sae):
    for call in (
        lambda: edas.list_recent_change_order(edas_models.ListRecentChangeOrderRequest(app_id=EDAS_APP)),
        lambda: sae.describe_change_order(sae_models.DescribeChangeOrderRequest(change_order_id="demo-sae-failed")),
    ):
        try:
            call()
        except Exception as e:  # noqa: BLE001
            code, _ = error_code(e)
            expect(code == "SignatureDoesNotMatch", f"code {code!r}: {e}")
            expect("server string to sign is" in str(e), "message shows the server's string to sign")
        else:
            raise AssertionError("accepted a wrong secret")


@check("{0} sts GetCallerIdentity names the key's account")
def sts_caller_identity(scheme, sts):
    # v3: `POST /` signed ACS3-HMAC-SHA256 in the headers; v2: the classic RPC form, signed in
    # the query. The simulator's default account owns every key no scenario lists.
    resp = sts.get_caller_identity()
    body = resp.body
    expect(resp.status_code == 200, f"HTTP {resp.status_code}")
    expect(body.account_id == "1000000000000001", f"AccountId {body.account_id!r}")
    expect(body.identity_type == "RAMUser", f"IdentityType {body.identity_type!r}")
    expect((body.arn or "").startswith(f"acs:ram::{body.account_id}:"), f"Arn {body.arn!r}")
    expect(bool(body.request_id), "RequestId")


@check("{0} sts GetCallerIdentity refuses a wrong secret")
def sts_wrong_secret(scheme, sts):
    try:
        sts.get_caller_identity()
    except Exception as e:  # noqa: BLE001
        code, _ = error_code(e)
        expect(code == "SignatureDoesNotMatch", f"code {code!r}: {e}")
    else:
        raise AssertionError("accepted a wrong secret")


def schemes(url):
    """Requests the simulator authenticated so far, by signing scheme."""
    with urlopen(url.rstrip("/") + "/__sim/stats", timeout=10) as r:
        return json.load(r).get("auth_schemes", {})


@check("{0} requests were signed with {1}")
def signed_with(scheme, want, before, after):
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    grown = {k: v for k, v in grown.items() if v}
    expect(list(grown) == [want], f"schemes used: {grown}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("SIM_URL"))
    ap.add_argument("--access-key-id", default=os.environ.get("SIM_ACCESS_KEY_ID", "demo-key-id"))
    ap.add_argument("--access-key-secret", default=os.environ.get("SIM_ACCESS_KEY_SECRET", "demo-key-secret"))
    args = ap.parse_args()
    if not args.url:
        ap.error("the simulator URL is required (--url or SIM_URL)")
    endpoint = urlparse(args.url).netloc or args.url

    for scheme, wire_name in (("v3", "ACS3-HMAC-SHA256"), ("roa", "acs")):
        before = schemes(args.url)
        edas = EdasClient(config(endpoint, args.access_key_id, args.access_key_secret, scheme))
        sae = SaeClient(config(endpoint, args.access_key_id, args.access_key_secret, scheme))
        edas_list(scheme, edas)
        edas_info(scheme, edas)
        edas_unknown_app(scheme, edas)
        sae_list(scheme, sae)
        sae_describe(scheme, sae)
        sae_pipeline(scheme, sae)
        sae_namespace(scheme, sae)
        sae_key_filter(scheme, sae)
        sae_unknown_app(scheme, sae)
        signed_with(scheme, wire_name, before, schemes(args.url))
        sts_caller_identity(scheme, StsClient(config(endpoint, args.access_key_id, args.access_key_secret, scheme)))
        sts_wrong_secret(scheme, StsClient(config(endpoint, args.access_key_id, args.access_key_secret + "x", scheme)))
        bad_edas = EdasClient(config(endpoint, args.access_key_id, args.access_key_secret + "x", scheme))
        bad_sae = SaeClient(config(endpoint, args.access_key_id, args.access_key_secret + "x", scheme))
        wrong_secret(scheme, bad_edas, bad_sae)

    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{'FAILED' if failed else 'OK'}: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
