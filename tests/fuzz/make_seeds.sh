#!/bin/sh
# Rebuilds the committed seed corpora in tests/fuzz/corpus/<target>/ from the
# fixtures and a few hand-written edge cases. Run from the repository root:
#   sh tests/fuzz/make_seeds.sh [target ...]
# Targets with a leading flag byte (see each fuzz_<target>.c) get the fixture
# once per interesting flag value. Seeds stay small: what the fuzzer finds
# goes to build-fuzz/corpus/, never here; inputs that once crashed go to
# tests/fuzz/regressions/<target>/ by hand.
set -eu
FX=tests/fixtures
C=tests/fuzz/corpus

# seed TARGET NAME FLAGBYTE(octal or "") FILE
seed() {
    mkdir -p "$C/$1"
    if [ -n "$3" ]; then
        { printf "\\$3"; cat "$4"; } > "$C/$1/$2"
    else
        cat "$4" > "$C/$1/$2"
    fi
}
# text TARGET NAME PRINTF-FORMAT
text() {
    mkdir -p "$C/$1"
    printf -- "$3" > "$C/$1/$2"
}

ALL="${*:-form money alipay_notify alipay_response xml wechat_notify wechat_reply wechat_refund_notify http bill_alipay_zip bill_alipay_csv bill_wechat wechat_v3_notify wechat_v3_reply appstore_jws googleplay_rtdn}"
has() { for w in $ALL; do [ "$w" = "$1" ] && return 0; done; return 1; }

if has form; then
    rm -rf "$C/form"
    for f in $FX/alipay/notify_ok.form $FX/alipay/notify_refund.form $FX/alipay/return_ok.query; do
        seed form "$(basename "$f")" "" "$f"
    done
    text form empty_pairs 'a=1&&b=2&'
    text form bad_percent 'a=%%zz&b=%%4'
    text form nul 'a=%%00'
    text form once '+%%2B%%252B=%%E4%%B8%%AD%%FF'
    text form no_value 'k&=&=v&k2='
    text form ctrl 'a=%%09%%0d%%0a%%1f'
fi

if has money; then
    rm -rf "$C/money"
    for v in 0.00 99.00 12.3 01.00 100000000.00 100000000.01 92233720368547758.07 \
             92233720368547758.08 1e3 -1 0 9900 00 9223372036854775807 .50; do
        text money "v_$v" "$v"
    done
    text money i64_max_rate '\177\377\377\377\377\377\377\377\000\000\000\000\000\000\047\020'
    text money i64_min '\200\000\000\000\000\000\000\000\000\000\000\000\000\000\000\001'
fi

if has alipay_notify; then
    rm -rf "$C/alipay_notify"
    for f in $FX/alipay/*.form $FX/alipay/return_ok.query; do
        b=$(basename "$f")
        seed alipay_notify "raw_$b" 000 "$f"
        seed alipay_notify "seller_resign_$b" 003 "$f"
    done
    text alipay_notify resign_minimal '\002app_id=2021004100000001&out_trade_no=A1&trade_status=TRADE_SUCCESS&total_amount=0.01&refund_fee=0.01'
fi

if has alipay_response; then
    rm -rf "$C/alipay_response"
    for f in $FX/alipay/*.json; do
        b=$(basename "$f" .json)
        case "$b" in
            query_*) m=000 ;;
            precreate_*) m=001 ;;
            refund_query_*) m=003 ;;
            refund_*) m=002 ;;
            close_*) m=004 ;;
            *) m=007 ;;
        esac
        seed alipay_response "$b" "$m" "$f"
    done
    seed alipay_response resign_query_ok 200 $FX/alipay/query_ok.json
    seed alipay_response resign_error 207 $FX/alipay/error_response.json
    text alipay_response span_tricky '\200{"alipay_trade_query_response":{"code":"10000","s":"} ] \\" \\\\","n":[{"a":"]}"}]},"sign":"a\\/b=="}'
    text alipay_response escaped_key '\000{"alipay_trade_query\\u005fresponse":{"code":"10000"},"sign":"x"}'
    text alipay_response deep '\000{"alipay_trade_query_response":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}'
    text alipay_response truncated '\000{"alipay_trade_query_response":{"code":"10000","msg":"Succ'
    text alipay_response repeated '\000{"alipay_trade_query_response":{},"alipay_trade_query_response":{},"sign":"x"}'
fi

if has xml; then
    rm -rf "$C/xml"
    for f in $FX/wechat/notify_ok.xml $FX/wechat/refund_notify_ok.xml $FX/wechat/reply_refundquery_ok.xml \
             $FX/wechat/req_info_plain.xml; do
        seed xml "$(basename "$f")" "" "$f"
    done
    text xml empty_leaves '<xml><a/><b></b><c><![CDATA[]]></c></xml>'
    text xml cdata_split '<xml><a><![CDATA[x]]]]><![CDATA[>y]]>&amp;&#x4e2d;&#13;</a></xml>'
    text xml doctype '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>'
    text xml undeclared '<xml><a>&e;</a></xml>'
    text xml nested '<xml><a><b>1</b></a></xml>'
    text xml attrs '<xml x="1"><a y="2">1</a></xml>'
    text xml repeated '<xml><a>1</a><a>2</a></xml>'
    text xml comment_pi '<xml><!-- c --><?pi x?><a>1</a></xml>'
    text xml utf16_bom '\377\376<\000x\000m\000l\000>\000'
    text xml decl_gbk '<?xml version="1.0" encoding="GBK"?><xml><a>\344\270\255</a></xml>'
fi

if has wechat_notify; then
    rm -rf "$C/wechat_notify"
    for f in $FX/wechat/notify_*.xml; do
        b=$(basename "$f" .xml)
        case "$b" in *hmac*) m=001 ;; *) m=000 ;; esac
        seed wechat_notify "raw_$b" "$m" "$f"
    done
    seed wechat_notify resign_ok 002 $FX/wechat/notify_ok.xml
    seed wechat_notify resign_hmac 003 $FX/wechat/notify_hmac.xml
    text wechat_notify resign_minimal '\002<xml><return_code>SUCCESS</return_code><appid>wxd930ea5d5a258f4f</appid><mch_id>10000100</mch_id><result_code>SUCCESS</result_code><out_trade_no>A1</out_trade_no><total_fee>1</total_fee><transaction_id>T1</transaction_id></xml>'
fi

if has wechat_reply; then
    rm -rf "$C/wechat_reply"
    for f in $FX/wechat/reply_*.xml; do
        b=$(basename "$f" .xml)
        case "$b" in *hmac*) m=001 ;; *) m=000 ;; esac
        seed wechat_reply "raw_$b" "$m" "$f"
    done
    seed wechat_reply resign_refund_fail 002 $FX/wechat/reply_refund_NOTENOUGH.xml
    seed wechat_reply resign_ok 002 $FX/wechat/reply_unifiedorder_ok.xml
fi

if has wechat_refund_notify; then
    rm -rf "$C/wechat_refund_notify"
    for f in $FX/wechat/refund_notify_*.xml; do
        seed wechat_refund_notify "raw_$(basename "$f" .xml)" 000 "$f"
    done
    seed wechat_refund_notify b64_req_info 000 $FX/wechat/req_info.b64
    seed wechat_refund_notify inner_plain 001 $FX/wechat/req_info_plain.xml
    text wechat_refund_notify inner_minimal '\001<root><out_trade_no>A</out_trade_no><out_refund_no>R</out_refund_no><refund_status>CHANGE</refund_status><total_fee>2</total_fee><refund_fee>1</refund_fee></root>'
fi

if has http; then
    rm -rf "$C/http"
    text http json '\003/paygate/api/orders?lang=zh&x=%%20\n{"product":"c","amount_fen":9900,"neg":-1}'
    text http json_bad_types '\004/paygate/api/orders\n{"a":1.5,"b":null,"c":[1],"d":{"e":1}}'
    text http json_dup '\003/paygate/x\n{"a":"1","a":"2","\\u0000":"z"}'
    text http form '\002/paygate/notify/alipay?q=1\na=1&b=%%E4%%B8%%AD&c'
    text http no_ct '\000/paygate\nk=v'
    text http other_base '\010/payment?x=1\n'
    text http bearer '\006Bearer    tok?en\nbody'
    text http outside '\002/pay?x\n'
fi

# Bill parsers (src/bill.c): fixtures as they are.
if has bill_alipay_zip && [ -f $FX/bills/alipay_ok.zip ]; then
    rm -rf "$C/bill_alipay_zip"
    for f in $FX/bills/alipay_ok.zip $FX/bills/alipay_many.zip $FX/bills/alipay_no_detail.zip \
             $FX/bills/alipay_truncated.zip $FX/bills/alipay_bad_gbk.zip $FX/bills/sandbox_alipay.zip; do
        [ -f "$f" ] && seed bill_alipay_zip "$(basename "$f")" "" "$f"
    done
fi
if has bill_alipay_csv && [ -f $FX/bills/alipay_detail_utf8.csv ]; then
    rm -rf "$C/bill_alipay_csv"
    seed bill_alipay_csv utf8 000 $FX/bills/alipay_detail_utf8.csv
    seed bill_alipay_csv gbk 001 $FX/bills/alipay_detail_gbk.csv
    text bill_alipay_csv date_leap '\0002024-02-29'
    text bill_alipay_csv date_bad '\00020260230'
fi
if has bill_wechat && [ -f $FX/bills/wechat_all.txt ]; then
    rm -rf "$C/bill_wechat"
    for f in $FX/bills/wechat_all.txt $FX/bills/wechat_all.txt.gz $FX/bills/sandbox_wechat.txt \
             $FX/bills/wechat_truncated.gz $FX/bills/wechat_two_members.gz; do
        [ -f "$f" ] && seed bill_wechat "$(basename "$f")" "" "$f"
    done
fi
# v3: bodies and resources from tests/fixtures/wechat_v3/vectors.json (npm-made).
# vfield VECTOR FIELD: prints one string of the vectors file.
vfield() {
    python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]])' \
        $FX/wechat_v3/vectors.json "$1" "$2"
}
# vseed TARGET NAME FLAGBYTE VECTOR FIELD
vseed() {
    mkdir -p "$C/$1"
    { printf "\\$3"; vfield "$4" "$5"; } > "$C/$1/$2"
}
if has wechat_v3_notify; then
    rm -rf "$C/wechat_v3_notify"
    for v in notify_paid_pubkey notify_paid_platform notify_refund notify_other_mch; do
        vseed wechat_v3_notify "raw_$v" 000 $v body
        vseed wechat_v3_notify "envelope_$v" 002 $v body
    done
    for v in notify_paid_pubkey notify_real_amount notify_no_txn_id notify_other_app; do
        vseed wechat_v3_notify "resource_$v" 001 $v plaintext
    done
    for v in notify_refund notify_refund_over notify_refund_abnormal; do
        vseed wechat_v3_notify "resource_$v" 005 $v plaintext
    done
    text wechat_v3_notify b64_short '\000AAAAAAAAAAAAAAAAAAAAAA=='
fi
if has wechat_v3_reply; then
    rm -rf "$C/wechat_v3_reply"
    for v in reply_native_pubkey reply_query_ok reply_refund_ok reply_certificates; do
        vseed wechat_v3_reply "signed_$v" 001 $v body
        vseed wechat_v3_reply "unsigned_$v" 000 $v body
    done
    text wechat_v3_reply error_400 '\002{"code":"ORDER_CLOSED","message":"\344\270\215"}'
    text wechat_v3_reply prepay_jsapi '\001{"prepay_id":"wx201410272009395522657a690389285100"}'
    text wechat_v3_reply prepay_h5 '\001{"h5_url":"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016"}'
if has appstore_jws; then
    rm -rf "$C/appstore_jws"
    for f in $FX/appstore/vectors/tx_good.jws $FX/appstore/vectors/tx_alg_none.jws \
             $FX/appstore/vectors/tx_tampered.jws $FX/appstore/vectors/tx_other_root.jws; do
        seed appstore_jws "$(basename "$f")" 000 "$f"
    done
    for f in $FX/appstore/vectors/notify_one_time_charge.json $FX/appstore/vectors/notify_test.json; do
        seed appstore_jws "$(basename "$f")" 001 "$f"
    done
    text appstore_jws empty_payload '\001{"signedPayload":"e30.e30.AAAA"}'
fi
if has googleplay_rtdn; then
    rm -rf "$C/googleplay_rtdn"
    seed googleplay_rtdn token_good 001 $FX/googleplay/token_good.jwt
    seed googleplay_rtdn token_alg_none 001 $FX/googleplay/token_alg_none.jwt
    text googleplay_rtdn push_purchased '\000{"message":{"data":"eyJwYWNrYWdlTmFtZSI6ImNvbS5leGFtcGxlLnNob3AiLCJvbmVUaW1lUHJvZHVjdE5vdGlmaWNhdGlvbiI6eyJub3RpZmljYXRpb25UeXBlIjoxLCJwdXJjaGFzZVRva2VuIjoidDEiLCJza3UiOiJlYm9va19zcWwifX0=","messageId":"1"}}'
    text googleplay_rtdn push_test '\000{"message":{"data":"eyJwYWNrYWdlTmFtZSI6ImNvbS5leGFtcGxlLnNob3AiLCJ0ZXN0Tm90aWZpY2F0aW9uIjp7fX0="}}'
fi
echo "seeds: $(find $C -type f | wc -l) files, $(du -sk $C | cut -f1) KiB"
