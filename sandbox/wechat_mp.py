"""The WeChat Official Account (公众号) API that a JS-SDK page needs, and the
payee's WeChat checking the page's wx.config (the "phone").

  POST /cgi-bin/stable_token {"grant_type": "client_credential", "appid",
       "secret", "force_refresh": false}
       -> {"access_token", "expires_in"}; normal mode answers the current
       token (with the seconds it has left) while it is valid, so processes
       that fetch it do not invalidate each other; force_refresh issues a new
       one and the old one stops working. Errors (HTTP 200, like WeChat):
       40002 invalid grant_type, 40013 invalid appid, 40125 invalid appsecret.
  GET  /cgi-bin/ticket/getticket?access_token=…&type=jsapi
       -> {"errcode": 0, "errmsg": "ok", "ticket", "expires_in"}; the current
       ticket while it is valid. 41001 access_token missing, 40001 invalid
       credential (unknown or revoked token), 42001 access_token expired,
       40097 invalid args (type).

The phone: POST /_sandbox/wechat_mp/jssdk_config {"appId", "timestamp",
"nonceStr", "signature", "url", "jsApiList"} is what WeChat's JS-SDK does with
wx.config: the signature must be hex SHA1 of
"jsapi_ticket=T&noncestr=N&timestamp=S&url=U" for a ticket this sandbox issued
and that has not expired, and U = url without its #fragment (the page the
browser shows). Answers {"errMsg": "config:ok"} or "config:invalid signature",
"config:invalid url domain" (when js_domains is set and the URL's host is not
in it: the Official Account's JS接口安全域名), "config:invalid appid".

Control: GET /_sandbox/wechat_mp/state (call counts: stable_token, getticket,
jssdk_config, and the current settings); POST /_sandbox/wechat_mp/config
{"expires_in": N (lifetime of new tokens and tickets), "js_domains": [...],
"reset_calls": true}; POST /_sandbox/wechat_mp/invalidate {"what":
"token"|"ticket"|"both", "how": "revoke"|"expire"}: revoked tokens answer
40001, expired ones 42001; an expired or revoked ticket is refused by the
phone and a new one is issued.
"""

import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse

from core import BadRequest, json_response, log

DEFAULT_EXPIRES = 7200


def jssdk_signature(ticket, noncestr, timestamp, url):
    text = "jsapi_ticket=%s&noncestr=%s&timestamp=%s&url=%s" % (ticket, noncestr, timestamp, url.split("#")[0])
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _rid():
    return secrets.token_hex(4) + "-" + secrets.token_hex(4)


def _error(code, msg):
    return json_response({"errcode": code, "errmsg": "%s rid: %s" % (msg, _rid())})


class WechatMpApi:
    def __init__(self, app, appid, secret):
        self.app = app
        self.appid = appid
        self.secret = secret
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with self.lock:
            self.expires_in = DEFAULT_EXPIRES
            self.js_domains = []
            self.tokens = {}           # token -> {"expires": t, "revoked": bool}
            self.current_token = None
            self.tickets = {}          # ticket -> {"expires": t, "revoked": bool}
            self.current_ticket = None
            self.calls = {"stable_token": 0, "getticket": 0, "jssdk_config": 0}

    @staticmethod
    def knows(_out_trade_no):
        return False               # no trades here

    def routes(self):
        return [("POST", r"/cgi-bin/stable_token", self.stable_token),
                ("GET", r"/cgi-bin/ticket/getticket", self.getticket),
                ("GET", r"/_sandbox/wechat_mp/state", self.ctl_state),
                ("POST", r"/_sandbox/wechat_mp/config", self.ctl_config),
                ("POST", r"/_sandbox/wechat_mp/invalidate", self.ctl_invalidate),
                ("POST", r"/_sandbox/wechat_mp/jssdk_config", self.phone_config)]

    @staticmethod
    def _valid(entry, now):
        return entry is not None and not entry["revoked"] and entry["expires"] > now

    def _issue(self, store, prefix):
        value = prefix + secrets.token_urlsafe(48)
        store[value] = {"expires": time.time() + self.expires_in, "revoked": False}
        return value

    def stable_token(self, req):
        body = req.json()
        with self.lock:
            self.calls["stable_token"] += 1
            if body.get("grant_type") != "client_credential":
                return _error(40002, "invalid grant_type")
            if body.get("appid") != self.appid:
                return _error(40013, "invalid appid")
            secret = body.get("secret")
            if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), self.secret.encode()):
                return _error(40125, "invalid appsecret")
            now = time.time()
            entry = self.tokens.get(self.current_token)
            if body.get("force_refresh") is True or not self._valid(entry, now):
                if entry is not None:
                    entry["revoked"] = True
                self.current_token = self._issue(self.tokens, "")
                entry = self.tokens[self.current_token]
            log("wechat mp stable_token issued/answered (%d s left)" % int(entry["expires"] - now))
            return json_response({"access_token": self.current_token,
                                  "expires_in": max(1, int(entry["expires"] - now))})

    def getticket(self, req):
        query = dict(req.query_pairs())
        with self.lock:
            self.calls["getticket"] += 1
            token = query.get("access_token")
            if not token:
                return _error(41001, "access_token missing")
            entry = self.tokens.get(token)
            now = time.time()
            if entry is None or entry["revoked"]:
                return _error(40001, "invalid credential, access_token is invalid or not latest")
            if entry["expires"] <= now:
                return _error(42001, "access_token expired")
            if query.get("type") != "jsapi":
                return _error(40097, "invalid args")
            ticket = self.tickets.get(self.current_ticket)
            if not self._valid(ticket, now):
                self.current_ticket = self._issue(self.tickets, "")
                ticket = self.tickets[self.current_ticket]
            return json_response({"errcode": 0, "errmsg": "ok", "ticket": self.current_ticket,
                                  "expires_in": max(1, int(ticket["expires"] - now))})

    def phone_config(self, req):
        """WeChat's JS-SDK checking wx.config for the page at url."""
        body = req.json()
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise BadRequest("url is required")
        with self.lock:
            self.calls["jssdk_config"] += 1
            if body.get("appId") != self.appid:
                return json_response({"errMsg": "config:invalid appid"})
            host = urllib.parse.urlsplit(url).hostname or ""
            if self.js_domains and host not in self.js_domains:
                return json_response({"errMsg": "config:invalid url domain"})
            signature = body.get("signature")
            nonce, stamp = body.get("nonceStr"), body.get("timestamp")
            if not isinstance(signature, str) or not isinstance(nonce, str) or not nonce \
                    or isinstance(stamp, bool) or not isinstance(stamp, (int, str)):
                return json_response({"errMsg": "config:invalid signature"})
            now = time.time()
            for ticket, entry in self.tickets.items():
                if self._valid(entry, now) and hmac.compare_digest(
                        jssdk_signature(ticket, nonce, stamp, url), signature.lower()):
                    return json_response({"errMsg": "config:ok", "jsApiList": body.get("jsApiList") or []})
            return json_response({"errMsg": "config:invalid signature"})

    # control

    def ctl_state(self, _req):
        with self.lock:
            return json_response({"calls": dict(self.calls), "expires_in": self.expires_in,
                                  "js_domains": list(self.js_domains), "appid": self.appid,
                                  "app_secret": self.secret})

    def ctl_config(self, req):
        body = req.json()
        with self.lock:
            if "expires_in" in body:
                n = body["expires_in"]
                if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 86400:
                    raise BadRequest("expires_in must be 1..86400")
                self.expires_in = n
            if "js_domains" in body:
                domains = body["js_domains"]
                if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
                    raise BadRequest("js_domains must be a list of host names")
                self.js_domains = domains
            if body.get("reset_calls"):
                self.calls = {k: 0 for k in self.calls}
        return self.ctl_state(req)

    def ctl_invalidate(self, req):
        body = req.json()
        what, how = body.get("what", "token"), body.get("how", "revoke")
        if what not in ("token", "ticket", "both") or how not in ("revoke", "expire"):
            raise BadRequest("what: token|ticket|both, how: revoke|expire")
        with self.lock:
            stores = ([self.tokens] if what in ("token", "both") else []) + \
                     ([self.tickets] if what in ("ticket", "both") else [])
            for store in stores:
                for entry in store.values():
                    if how == "revoke":
                        entry["revoked"] = True
                    else:
                        entry["expires"] = min(entry["expires"], time.time() - 1)
        return self.ctl_state(req)
