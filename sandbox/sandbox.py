#!/usr/bin/python3
"""paygate provider sandbox: simulates the Alipay gateway, WeChat Pay (API
v2 and v3), Stripe, the App Store and Google Play on loopback.

Usage:
  /usr/bin/python3 sandbox/sandbox.py --state-dir DIR --http-port P --https-port Q \
      --app-id APPID --app-public-key FILE [--time-scale S] [--host 127.0.0.1] \
      [--wechat-appid ID] [--wechat-mch-id N] [--wechat-api-key KEY] [--fee-rate-bp 60]

See sandbox/README.md for the routes and the control API.
"""

import argparse
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bills  # noqa: E402
import core  # noqa: E402
from alipay_certs import CertMode  # noqa: E402
from alipay_gw import AlipayProvider  # noqa: E402
from iap_gw import AppStoreProvider, GooglePlayProvider, public_base, url_ok  # noqa: E402
from stripe_gw import StripeProvider  # noqa: E402
from wechat_gw import WechatProvider  # noqa: E402
from wechat_mp import WechatMpApi  # noqa: E402
from wechat_v3_gw import MODES as WECHAT_V3_MODES, WechatV3Api  # noqa: E402

WECHAT_CERT = "wechat_apiclient_cert.pem"
WECHAT_KEY = "wechat_apiclient_key.pem"


def parse_args(argv):
    parser = argparse.ArgumentParser(description="paygate provider sandbox")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--https-port", type=int, required=True)
    parser.add_argument("--app-id", required=True, help="the merchant app's Alipay app_id")
    parser.add_argument("--app-public-key", required=True,
                        help="PEM file: the merchant app's public key (verifies requests)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies notification retry delays (default 1.0)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--wechat-appid", default="wx2421b1c4370ec43b",
                        help="the merchant's WeChat appid (default wx2421b1c4370ec43b)")
    parser.add_argument("--wechat-app-secret", default="sandboxAppSecret0123456789abcdef",
                        help="the Official Account's AppSecret (stable_token; paygate's [wechat] app_secret)")
    parser.add_argument("--wechat-mch-id", default="1900000109",
                        help="the merchant's WeChat Pay mch_id (default 1900000109)")
    parser.add_argument("--wechat-api-key", default="sandboxsandboxsandboxsandbox1234",
                        help="the merchant's 32-character API key (shared secret; paygate "
                             "must be configured with the same one)")
    parser.add_argument("--wechat-api-v3-key", default="sandboxV3sandboxV3sandboxV3key32",
                        help="the merchant's APIv3 key (32 ASCII bytes: AES-256-GCM key of "
                             "v3 notifications and certificates)")
    parser.add_argument("--wechat-pubkey-id",
                        default="PUB_KEY_ID_0119000001092026120700000000000001",
                        help="the ID WeChat Pay's public key signs v3 messages under")
    parser.add_argument("--wechat-v3-mode", choices=WECHAT_V3_MODES, default="pubkey",
                        help="v3 signatures by the WeChat Pay public key (pubkey, what a "
                             "merchant opened today has) or a platform certificate (platform)")
    parser.add_argument("--fee-rate-bp", type=int, default=60,
                        help="provider service fee in basis points, used in bills "
                             "(default 60 = 0.60%%)")
    parser.add_argument("--stripe-secret-key", default="sk_test_paygatesandbox",
                        help="the secret key API calls must carry (default sk_test_paygatesandbox)")
    parser.add_argument("--stripe-webhook-secret", default="whsec_paygatesandboxsecret",
                        help="the endpoint secret events are signed with (default whsec_paygatesandboxsecret)")
    parser.add_argument("--stripe-fee-rate-bp", type=int, default=340,
                        help="Stripe's fee in basis points in balance transactions (default 340)")
    parser.add_argument("--appstore-bundle-id", default="com.example.shop",
                        help="the app's bundle id (default com.example.shop)")
    parser.add_argument("--appstore-app-apple-id", type=int, default=1234567890,
                        help="the app's Apple id (default 1234567890)")
    parser.add_argument("--appstore-environment", choices=("Production", "Sandbox"), default="Production")
    parser.add_argument("--appstore-notify-url", default="",
                        help="where App Store Server Notifications go (paygate's .../notify/appstore)")
    parser.add_argument("--googleplay-package", default="com.example.shop",
                        help="the app's package name (default com.example.shop)")
    parser.add_argument("--googleplay-push-url", default="",
                        help="the Pub/Sub push endpoint (paygate's .../notify/googleplay)")
    parser.add_argument("--googleplay-push-audience", default="",
                        help="the audience of the push's OIDC token (default: the push URL)")
    parser.add_argument("--googleplay-push-email",
                        default="play-rtdn@example-project.iam.gserviceaccount.com",
                        help="the service account Pub/Sub pushes as")
    args = parser.parse_args(argv)
    if not url_ok(args.appstore_notify_url) or not url_ok(args.googleplay_push_url):
        parser.error("--appstore-notify-url and --googleplay-push-url must be http(s) URLs")
    if not args.stripe_secret_key.startswith("sk_test_") or not args.stripe_webhook_secret.startswith("whsec_"):
        parser.error("--stripe-secret-key must be sk_test_..., --stripe-webhook-secret whsec_...")
    if args.fee_rate_bp < 0 or args.fee_rate_bp > 10000:
        parser.error("--fee-rate-bp must be 0..10000")
    if args.time_scale < 0:
        parser.error("--time-scale must be >= 0")
    key = args.wechat_api_key
    if len(key) != 32 or not all("!" <= ch <= "~" for ch in key):
        parser.error("--wechat-api-key must be 32 printable ASCII characters without spaces")
    v3_key = args.wechat_api_v3_key
    if len(v3_key) != 32 or not all("!" <= ch <= "~" for ch in v3_key):
        parser.error("--wechat-api-v3-key must be 32 printable ASCII characters")
    if not args.wechat_mch_id.isdigit() or not args.wechat_appid:
        parser.error("--wechat-mch-id must be digits and --wechat-appid non-empty")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state = os.path.abspath(args.state_dir)
    os.makedirs(state, exist_ok=True)
    ready = os.path.join(state, "ready")
    if os.path.exists(ready):
        os.unlink(ready)

    alipay_private = os.path.join(state, "alipay_private_key.pem")
    alipay_public = os.path.join(state, "alipay_public_key.pem")
    core.ensure_key_pair(alipay_private, alipay_public)
    core.ensure_tls(state)
    core.ensure_client_cert(state, WECHAT_CERT, WECHAT_KEY, args.wechat_mch_id)
    with open(args.app_public_key, "rb") as handle:
        app_public = handle.read()
    with open(alipay_private, "rb") as handle:
        alipay_private_pem = handle.read()
    with open(alipay_public, "rb") as handle:
        alipay_public_pem = handle.read()

    public_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    app = core.App(vars(args))
    app.bill_faults = bills.BillFaults()
    alipay = AlipayProvider(
        app, args.app_id, app_public, alipay_private_pem, alipay_public_pem,
        args.time_scale, "http://%s:%d" % (public_host, args.http_port))
    alipay.certs = CertMode(state, args.app_id, app_public, alipay_private_pem)
    app.add_provider(alipay)
    wechat = WechatProvider(
        app, args.wechat_appid, args.wechat_mch_id, args.wechat_api_key, args.time_scale,
        "http://%s:%d" % (public_host, args.http_port),
        {"client_cert": os.path.join(state, WECHAT_CERT),
         "client_key": os.path.join(state, WECHAT_KEY),
         "ca": os.path.join(state, "ca.pem")})
    app.add_provider(wechat)
    app.add_provider(WechatV3Api(app, wechat, state, args.wechat_api_v3_key,
                                 args.wechat_pubkey_id, args.wechat_v3_mode))

    app.add_provider(WechatMpApi(app, args.wechat_appid, args.wechat_app_secret))

    app.add_provider(StripeProvider(
        app, args.stripe_secret_key, args.stripe_webhook_secret, args.time_scale,
        "http://%s:%d" % (public_host, args.http_port)))

    app.add_provider(AppStoreProvider(
        app, state, args.appstore_bundle_id, args.appstore_app_apple_id, args.appstore_environment,
        args.appstore_notify_url, args.time_scale))
    app.add_provider(GooglePlayProvider(
        app, state, public_base(args.host, args.http_port), args.googleplay_package,
        args.googleplay_push_url, args.googleplay_push_audience, args.googleplay_push_email,
        args.time_scale))

    def stop(signum, _frame):
        core.log("signal %d: shutting down" % signum)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    servers, _threads = core.start_servers(
        app, args.host, args.http_port, args.https_port,
        os.path.join(state, "server.pem"), os.path.join(state, "server.key"),
        client_ca_file=os.path.join(state, "ca.pem"))
    tmp = ready + ".tmp"
    with open(tmp, "w") as handle:
        handle.write("%d\n" % os.getpid())
    os.replace(tmp, ready)
    core.log("listening on http://%s:%d and https://%s:%d (state %s, pid %d)" % (
        args.host, args.http_port, args.host, args.https_port, state, os.getpid()))

    while not app.stop_event.wait(1.0):
        pass
    app.scheduler.reset()
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    try:
        os.unlink(ready)
    except FileNotFoundError:
        pass
    core.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
