#!/usr/bin/env bash
# The paygate demo: everything on loopback, under <repo>/run/demo.
#
#   scripts/demo.sh start    (make demo)       start what is not running yet
#   scripts/demo.sh stop     (make demo-stop)  stop it all, by pid files
#   scripts/demo.sh status
#
#   MariaDB (private)   127.0.0.1:3407   run/demo/db
#   provider sandbox    http://127.0.0.1:8090 (Alipay gateway and cashier, WeChat
#                       "phone" at /wechat/phone, App Store and Google Play with their
#                       "phones" at /appstore/phone, /googleplay/phone), https :8443
#                       (WeChat API: v2 with mutual TLS, v3 in public-key mode, which the demo uses)
#   paygate             spawn-fcgi 127.0.0.1:9000, 8 processes ($PAYGATE_FCGI_PROCESSES)
#   lighttpd            http://127.0.0.1:8080/pay/  (apache-conf/lighttpd-*.conf)
#
# The demo gateway is the sandbox's plain-HTTP address, so a browser needs no
# certificate. Binaries: $PAYGATE_BUILD (default <repo>/build).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUN="$REPO/run/demo"
BUILD=${PAYGATE_BUILD:-$REPO/build}
PY=/usr/bin/python3
DB_PORT=3407
SB_HTTP=8090
SB_HTTPS=8443
FCGI_PORT=9000
# the knee `make bench` measures on 2 cores (the README's sizing rule: 4 per core)
FCGI_PROCESSES=${PAYGATE_FCGI_PROCESSES:-8}
WEB_PORT=8080
APP_ID=2021000000000001
SELLER_ID=2088102177846880
WX_APPID=wx2421b1c4370ec43b
WX_MCH_ID=1900000109
WX_API_KEY=demoDemoWechatApiKey0123456789ab
# WeChat Pay API v3 in public-key mode: the sandbox signs with the key whose
# public half it writes to $RUN/sandbox/wechatpay_pub_key.pem, under this ID
WX_API_V3_KEY=demoV3demoV3demoV3demoV3demoV3ab
WX_PUBKEY_ID=PUB_KEY_ID_0119000001092026120700000000000001
# the app in the App Store and Google Play (the sandbox's stores)
APP_BUNDLE=com.example.shop
APP_APPLE_ID=1234567890
PLAY_PUSHER=play-rtdn@example-project.iam.gserviceaccount.com
CONFIG="$RUN/paygate.ini"
BASE_URL="http://127.0.0.1:$WEB_PORT/pay"

say() { echo "demo: $*"; }
die() { echo "demo: $*" >&2; exit 1; }

pid_alive() {  # pid_alive FILE -> 0 when every pid in FILE is alive
  local f=$1 p pids
  pids=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pids" ] || return 1
  for p in $pids; do
    kill -0 "$p" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && return 1
  done
  return 0
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2 i
  shift 2
  for i in $(seq 1 $((secs * 10))); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  die "timed out waiting for $what"
}

stop_pidfile() {  # stop_pidfile FILE NAME
  local f=$1 name=$2 p i pids alive
  [ -s "$f" ] || { rm -f "$f"; return 0; }
  pids=$(cat "$f")  # read once: lighttpd removes its pid file as it exits
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 100); do
    alive=0
    for p in $pids; do
      if kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; then
        alive=1
      fi
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$f"
  say "$name stopped"
}

ctl() { "$BUILD/paygatectl" -c "$CONFIG" "$@"; }

start() {
  for b in paygate.fcgi paygatectl; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is missing: run make first"
  done
  mkdir -p "$RUN/htdocs"

  # 1. database
  bash "$REPO/scripts/mariadb.sh" start "$RUN/db" "$DB_PORT" >/dev/null
  say "MariaDB on 127.0.0.1:$DB_PORT"

  # 2. app keys and the sandbox (which creates the Alipay keys and CA)
  "$PY" "$REPO/scripts/stack.py" keys "$RUN/keys" >/dev/null
  if pid_alive "$RUN/sandbox.pid" && [ -e "$RUN/sandbox/ready" ]; then
    say "sandbox already running"
  else
    rm -f "$RUN/sandbox.pid" "$RUN/sandbox/ready"
    for p in $SB_HTTP $SB_HTTPS; do port_busy "$p" && die "port $p is taken by another program"; done
    setsid nohup "$PY" "$REPO/sandbox/sandbox.py" --state-dir "$RUN/sandbox" \
      --http-port "$SB_HTTP" --https-port "$SB_HTTPS" --app-id "$APP_ID" \
      --app-public-key "$RUN/keys/app_public.pem" --wechat-appid "$WX_APPID" \
      --wechat-mch-id "$WX_MCH_ID" --wechat-api-key "$WX_API_KEY" \
      --wechat-api-v3-key "$WX_API_V3_KEY" --wechat-pubkey-id "$WX_PUBKEY_ID" \
      --wechat-v3-mode pubkey \
      --appstore-bundle-id "$APP_BUNDLE" --appstore-app-apple-id "$APP_APPLE_ID" \
      --appstore-notify-url "$BASE_URL/notify/appstore" --googleplay-package "$APP_BUNDLE" \
      --googleplay-push-url "$BASE_URL/notify/googleplay" --googleplay-push-email "$PLAY_PUSHER" \
      </dev/null >>"$RUN/sandbox.log" 2>&1 &
    echo $! >"$RUN/sandbox.pid"
    wait_for 30 "the sandbox (see $RUN/sandbox.log)" test -e "$RUN/sandbox/ready"
    say "sandbox on http://127.0.0.1:$SB_HTTP"
  fi

  # 3. config, schema, catalogue
  umask 077
  cat >"$CONFIG" <<EOF
; paygate demo configuration, written by scripts/demo.sh
[server]
base_url = $BASE_URL
api_key = demo-api-key-0123456789abcdef
checkout_secret = demo-checkout-secret-0123456789
order_ttl = 900
log_file = $RUN/paygate.log

[database]
host = 127.0.0.1
port = $DB_PORT
socket =
user = paygate
password = paygate
name = paygate

[alipay]
enabled = true
app_id = $APP_ID
gateway = http://127.0.0.1:$SB_HTTP/gateway.do
app_private_key = $RUN/keys/app_private_pkcs8.pem
alipay_public_key = $RUN/sandbox/alipay_public_key.pem
seller_id = $SELLER_ID
ca_file = $RUN/sandbox/ca.pem

[wechat]
enabled = true
appid = $WX_APPID
mch_id = $WX_MCH_ID
api_key = $WX_API_KEY
sign_type = HMAC-SHA256
gateway = https://127.0.0.1:$SB_HTTPS
ca_file = $RUN/sandbox/ca.pem
client_cert = $RUN/sandbox/wechat_apiclient_cert.pem
client_key = $RUN/sandbox/wechat_apiclient_key.pem
; new WeChat payments go through API v3 (public-key mode); v2 stays configured
; above for payments made before a switch (and is what the tests also cover)
api_version = v3
api_v3_key = $WX_API_V3_KEY
wechatpay_public_key = $RUN/sandbox/wechatpay_pub_key.pem
wechatpay_public_key_id = $WX_PUBKEY_ID

[merchant]
return_url = $BASE_URL/shop
webhook_url =
webhook_secret = demo-webhook-secret

[appstore]
enabled = true
bundle_id = $APP_BUNDLE
app_apple_id = $APP_APPLE_ID
environment = Production
root_cert = $RUN/sandbox/appstore/appstore_root.pem
issuer_id = 57246542-96fe-1a63-e053-0824d011072a
key_id = 2X9R4HXF34
private_key = $RUN/sandbox/appstore/SubscriptionKey.p8
api_base = http://127.0.0.1:$SB_HTTP

[googleplay]
enabled = true
package_name = $APP_BUNDLE
service_account = $RUN/sandbox/googleplay/service_account.json
api_base = http://127.0.0.1:$SB_HTTP
push_audience = $BASE_URL/notify/googleplay
push_email = $PLAY_PUSHER
push_certs_url = http://127.0.0.1:$SB_HTTP/oauth2/v3/certs

[stripe]
enabled = true
secret_key = sk_test_paygatesandbox
webhook_secret = whsec_paygatesandboxsecret
api_base = http://127.0.0.1:$SB_HTTP
currency = cny

[demo]
storefront = true
appstore_phone = http://127.0.0.1:$SB_HTTP/appstore/phone
googleplay_phone = http://127.0.0.1:$SB_HTTP/googleplay/phone
EOF
  umask 022
  ctl check-config >/dev/null
  ctl migrate >/dev/null
  local listing
  listing=$(ctl creator list)
  if ! grep -qw alice <<<"$listing"; then
    ctl creator add --id alice --name "Alice Zhang" >/dev/null
  fi
  add_product() {  # sku title fen [creator]
    local products
    products=$(ctl product list)
    if grep -qE "(^|[[:space:]|])$1([[:space:]|]|$)" <<<"$products"; then return 0; fi
    if [ -n "${4:-}" ]; then
      ctl product add --sku "$1" --title "$2" --price-fen "$3" --creator "$4" >/dev/null
    else
      ctl product add --sku "$1" --title "$2" --price-fen "$3" >/dev/null
    fi
  }
  add_product course-c "C for grown-ups" 9900 alice
  add_product course-linux "Linux servers from scratch" 19900 alice
  add_product ebook-sql "SQL, the hard parts" 1990
  # the same courses in the app: App Store and Google Play product ids
  ctl product update --sku course-c --appstore-id com.example.shop.course_c \
    --googleplay-id course_c >/dev/null
  ctl product update --sku ebook-sql --appstore-id com.example.shop.ebook_sql \
    --googleplay-id ebook_sql >/dev/null

  # 4. paygate under spawn-fcgi
  if pid_alive "$RUN/paygate.pid"; then
    say "paygate already running"
  else
    stop_pidfile "$RUN/paygate.pid" "stale paygate" >/dev/null
    port_busy $FCGI_PORT && die "port $FCGI_PORT is taken by another program"
    spawn-fcgi -a 127.0.0.1 -p $FCGI_PORT -F "$FCGI_PROCESSES" -P "$RUN/paygate.pid" -- \
      "$BUILD/paygate.fcgi" -c "$CONFIG" >>"$RUN/spawn-fcgi.log" 2>&1 \
      || die "spawn-fcgi failed, see $RUN/spawn-fcgi.log and $RUN/paygate.log"
    wait_for 10 "paygate on port $FCGI_PORT" port_busy $FCGI_PORT
    say "paygate on 127.0.0.1:$FCGI_PORT ($FCGI_PROCESSES processes)"
  fi

  # 5. lighttpd, from the same templates as the tests
  if pid_alive "$RUN/lighttpd.pid"; then
    say "lighttpd already running"
  else
    rm -f "$RUN/lighttpd.pid"
    port_busy $WEB_PORT && die "port $WEB_PORT is taken by another program"
    "$PY" "$REPO/scripts/stack.py" render "$REPO/apache-conf/lighttpd-paygate.conf" \
      "$RUN/lighttpd-paygate.conf" MOUNT=/pay \
      "FCGI_BACKEND=\"host\" => \"127.0.0.1\", \"port\" => $FCGI_PORT"
    "$PY" "$REPO/scripts/stack.py" render "$REPO/apache-conf/lighttpd-test.conf" \
      "$RUN/lighttpd.conf" PORT=$WEB_PORT "RUN_DIR=$RUN" "PAYGATE_SNIPPET=$RUN/lighttpd-paygate.conf"
    lighttpd -f "$RUN/lighttpd.conf" >>"$RUN/lighttpd.out" 2>&1 \
      || die "lighttpd failed, see $RUN/lighttpd.out and $RUN/lighttpd-error.log"
    wait_for 10 "lighttpd on port $WEB_PORT" port_busy $WEB_PORT
    say "lighttpd on 127.0.0.1:$WEB_PORT"
  fi

  wait_for 20 "GET $BASE_URL/healthz" \
    "$PY" -c "import sys,urllib.request; sys.exit(urllib.request.urlopen('$BASE_URL/healthz', timeout=2).status != 200)"
  # Stripe's events go to the endpoint a shop registers in its dashboard: here the sandbox's
  "$PY" -c "import json,urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:$SB_HTTP/_sandbox/stripe/endpoint', data=json.dumps({'url': '$BASE_URL/notify/stripe'}).encode(), headers={'Content-Type': 'application/json'}), timeout=5)" \
    || die "could not register the Stripe webhook endpoint with the sandbox"
  echo
  echo "Demo shop: $BASE_URL/shop"
  echo "WeChat phone (pay a QR code here): http://127.0.0.1:$SB_HTTP/wechat/phone"
  echo "(Alipay: the sandbox cashier opens when you buy; WeChat: open the phone page and"
  echo " press Pay, the QR page moves on by itself; logs in $RUN; stop with: make demo-stop)"
  echo "In the app: the shop's App Store / Google Play buttons open the sandbox's phone; Buy"
  echo " there makes the store send paygate its signed notification, and the course is Owned."
}

stop() {
  stop_pidfile "$RUN/lighttpd.pid" lighttpd
  stop_pidfile "$RUN/paygate.pid" paygate
  stop_pidfile "$RUN/sandbox.pid" sandbox
  if [ -d "$RUN/db" ]; then
    bash "$REPO/scripts/mariadb.sh" stop "$RUN/db" >/dev/null
    say "MariaDB stopped"
  fi
}

status() {
  local rc=0
  for n in lighttpd paygate sandbox; do
    if pid_alive "$RUN/$n.pid"; then say "$n running"; else say "$n not running"; rc=1; fi
  done
  bash "$REPO/scripts/mariadb.sh" status "$RUN/db" || rc=1
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
