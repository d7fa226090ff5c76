use super::*;

fn policy(s: &str) -> EndpointPolicy {
    EndpointPolicy::parse(s).expect("valid policy")
}

#[test]
fn default_policy_admits_the_cloud_api_hosts() {
    let p = EndpointPolicy::default();
    assert_eq!(p.to_string(), DEFAULT_ALLOWED_ENDPOINTS);
    for ok in [
        "https://sae.cn-hangzhou.aliyuncs.com",
        "https://sae-vpc.cn-hangzhou.aliyuncs.com/",
        "https://edas.cn-shanghai.aliyuncs.com/",
        "https://edas-vpc.ap-southeast-1.aliyuncs.com",
        "https://edas.cn-shanghai-finance-1.aliyuncs.com",
        "https://sae.cn-north-2-gov-1.aliyuncs.com",
        "https://openapi-rdc.aliyuncs.com",
        "https://sts.aliyuncs.com",
        "https://sts.cn-hangzhou.aliyuncs.com",
        "https://sts-vpc.eu-central-1.aliyuncs.com",
        // The same host as the client sends it (hosts are case-insensitive, 443 is https's).
        "https://SAE.CN-HANGZHOU.ALIYUNCS.COM",
        "https://sae.cn-hangzhou.aliyuncs.com:443",
    ] {
        assert_eq!(p.check(ok), Ok(()), "{ok}");
    }
}

#[test]
fn default_policy_refuses_hosts_tenants_own_and_everything_else() {
    let p = EndpointPolicy::default();
    for bad in [
        // Function Compute HTTP triggers: the account's own server.
        "https://1234567890.cn-hangzhou.fc.aliyuncs.com",
        "https://1234567890.cn-hangzhou.fc.aliyuncs.com/2016-08-15/proxy/svc/fn/",
        // OSS buckets named like a product.
        "https://sae.oss-cn-hangzhou.aliyuncs.com",
        "https://edas.oss-cn-hangzhou.aliyuncs.com",
        "https://sts.oss-cn-hangzhou-internal.aliyuncs.com",
        "https://sae.oss-accelerate.aliyuncs.com",
        // Other hosts under aliyuncs.com.
        "https://x.aliyuncs.com",
        "https://ecs.cn-hangzhou.aliyuncs.com",
        "https://sae.cn-hangzhou.log.aliyuncs.com",
        "https://a.sae.cn-hangzhou.aliyuncs.com",
        "https://aliyuncs.com",
        // Path prefixes, user info, query, fragment.
        "https://sae.cn-hangzhou.aliyuncs.com/prefix",
        "https://sae.cn-hangzhou.aliyuncs.com/prefix/",
        "https://openapi-rdc.aliyuncs.com/oapi/v1",
        "https://sae.cn-hangzhou.aliyuncs.com/..%2fx",
        "https://u@sae.cn-hangzhou.aliyuncs.com",
        "https://u:p@sae.cn-hangzhou.aliyuncs.com",
        "https://evil.com@sae.cn-hangzhou.aliyuncs.com",
        "https://sae.cn-hangzhou.aliyuncs.com@evil.com",
        "https://sae.cn-hangzhou.aliyuncs.com/?x=1",
        "https://sae.cn-hangzhou.aliyuncs.com/#f",
        // Plain http.
        "http://sae.cn-hangzhou.aliyuncs.com",
        "http://sts.aliyuncs.com",
        // Odd regions.
        "https://sae.cn.aliyuncs.com",
        "https://sae.c-hangzhou.aliyuncs.com",
        "https://sae.cnn-hangzhou.aliyuncs.com",
        "https://sae.cn--hangzhou.aliyuncs.com",
        "https://sae.cn-hangzhou-.aliyuncs.com",
        "https://sae.-cn-hangzhou.aliyuncs.com",
        "https://sae.cn_hangzhou.aliyuncs.com",
        "https://sae.xn--cn-hangzhou.aliyuncs.com",
        "https://sae.cn-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aliyuncs.com",
        "https://sae.12-hangzhou.aliyuncs.com",
        // Suffix tricks, trailing dots, encoded dots.
        "https://sae.cn-hangzhou.aliyuncs.com.evil.com",
        "https://sae.cn-hangzhou.aliyuncs.com.",
        "https://sts.aliyuncs.com.",
        "https://sae.cn-hangzhou.aliyuncs.com%2eevil.com",
        "https://sae.cn-hangzhou.aliyuncs.com-evil.com",
        "https://xaliyuncs.com",
        // Other ports, IP literals, schemes, garbage.
        "https://sae.cn-hangzhou.aliyuncs.com:8443",
        "https://sae.cn-hangzhou.aliyuncs.com:80",
        "https://127.0.0.1",
        "https://100.100.100.200",
        "https://[::1]",
        "ftp://sae.cn-hangzhou.aliyuncs.com",
        "not a url",
        "",
    ] {
        assert!(p.check(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn region_ids() {
    for ok in [
        "cn-hangzhou",
        "ap-southeast-1",
        "cn-shanghai-finance-1",
        "us-west-1",
        "cn-north-2-gov-1",
    ] {
        assert!(is_region_id(ok), "{ok}");
    }
    for bad in [
        "",
        "cn",
        "cn-",
        "-cn",
        "oss-cn-hangzhou",
        "CN-HANGZHOU",
        "cn.hangzhou",
        "cn-hangzhou.evil.com",
        "cn--hangzhou",
        "cn_hangzhou",
        "c1-hangzhou",
        "cn-hangzhou/x",
        "cn-hangzhou@evil.com",
        "cn-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert!(!is_region_id(bad), "{bad:?}");
    }
}

#[test]
fn a_wide_pattern_is_explicit_and_still_root_only() {
    let p = policy("https://*.aliyuncs.com");
    assert_eq!(p.check("https://sae.oss-cn-hangzhou.aliyuncs.com"), Ok(()));
    let e = p
        .check("https://a.b.c.aliyuncs.com/prefix/path")
        .expect_err("a path the pattern does not name");
    assert_eq!(e.reason, RefusalReason::PathNotAllowed);
}

#[test]
fn a_pattern_with_a_path_admits_that_path_only() {
    let p = policy("https://proxy.example.com/edas,http://127.0.0.1:*/sim/");
    for ok in [
        "https://proxy.example.com/edas",
        "https://proxy.example.com/edas/",
        "https://proxy.example.com/x/../edas",
        "http://127.0.0.1:8080/sim",
    ] {
        assert_eq!(p.check(ok), Ok(()), "{ok}");
    }
    for bad in [
        "https://proxy.example.com",
        "https://proxy.example.com/edas/x",
        "https://proxy.example.com/edasx",
        "https://proxy.example.com/EDAS",
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/sim/x",
    ] {
        assert!(p.check(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn the_region_label_in_explicit_patterns() {
    let p = policy("https://edas.<region>.internal.example.com:8443");
    assert_eq!(
        p.check("https://edas.cn-hangzhou.internal.example.com:8443"),
        Ok(())
    );
    assert!(p.check("https://edas.a.b.internal.example.com:8443").is_err());
    assert!(
        p.check("https://edas.oss-cn-hangzhou.internal.example.com:8443")
            .is_err()
    );
    assert!(EndpointPolicy::parse("https://<region>").is_err());
    assert!(EndpointPolicy::parse("https://x<region>.example.com").is_err());
}

#[test]
fn local_simulator_policy() {
    let p = policy("http://127.0.0.1:*");
    for ok in [
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
        // Other spellings of the same address, as the HTTP client parses them.
        "http://0x7f.0.0.1:8080",
        "http://2130706433:8080",
    ] {
        assert_eq!(p.check(ok), Ok(()), "{ok}");
    }
    for bad in [
        "https://127.0.0.1:8080",
        "http://127.0.0.1:31337/prefix",
        "http://127.0.0.2:8080",
        "http://localhost:8080",
        "http://127.0.0.1.evil.com:8080",
        "http://evil.com@127.0.0.1:8080",
        "http://10.127.0.0.1:8080",
    ] {
        assert!(p.check(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn ports_and_lists() {
    let p = policy(" https://api.example.com:8443 , http://*.internal:80,https://[::1]:*");
    for ok in [
        "https://api.example.com:8443/",
        "http://a.internal",
        "http://a.b.internal:80",
        "https://[::1]:9",
        "https://[0:0::1]",
    ] {
        assert_eq!(p.check(ok), Ok(()), "{ok}");
    }
    for bad in [
        "https://api.example.com",
        "https://api.example.com:8444",
        "http://a.internal:8080",
        "http://internal",
        "https://[::2]:9",
    ] {
        assert!(p.check(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn wildcard_in_the_middle() {
    let p = policy("https://sae.*.aliyuncs.com");
    assert_eq!(p.check("https://sae.cn-hangzhou.aliyuncs.com"), Ok(()));
    assert_eq!(p.check("https://sae.a.b.aliyuncs.com"), Ok(()));
    assert!(p.check("https://sae.aliyuncs.com").is_err());
    assert!(p.check("https://edas.cn-hangzhou.aliyuncs.com").is_err());
}

#[test]
fn pattern_case_is_ignored() {
    let p = policy("HTTPS://*.AliyunCS.com");
    assert_eq!(p.check("https://sae.cn-hangzhou.aliyuncs.com"), Ok(()));
}

#[test]
fn invalid_patterns() {
    for bad in [
        "",
        " , ",
        "*.aliyuncs.com",
        "ftp://*.aliyuncs.com",
        "https://*",
        "https://*.*",
        "https://*.<region>",
        "https://",
        "https://x.aliyuncs.com?q",
        "https://x.aliyuncs.com/p?q",
        "https://x.aliyuncs.com/#f",
        "https://x.aliyuncs.com/*",
        "https://user@x.aliyuncs.com",
        "https://x*.aliyuncs.com",
        "https://x..aliyuncs.com",
        "https://x.aliyuncs.com:0",
        "https://x.aliyuncs.com:99999",
        "https://x.aliyuncs.com:abc",
        "https://[::1",
    ] {
        let e = EndpointPolicy::parse(bad).expect_err(bad).to_string();
        assert!(
            e.contains("endpoint pattern"),
            "{bad}: message should say what is wrong: {e}"
        );
    }
}

#[test]
fn the_error_names_the_endpoint_and_the_policy() {
    let p = EndpointPolicy::default();
    let e = p
        .check("http://attacker.example:9000/x")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("http://attacker.example:9000/x"), "{e}");
    assert!(e.contains("https://sae.<region>.aliyuncs.com"), "{e}");
    assert!(e.contains("--allowed-endpoints"), "{e}");
}

#[test]
fn the_error_never_repeats_user_info() {
    let e = EndpointPolicy::default()
        .check("https://AKID:s3cr3t@x.aliyuncs.com/")
        .expect_err("refused")
        .to_string();
    assert!(!e.contains("s3cr3t") && !e.contains("AKID"), "{e}");
    assert!(e.contains("x.aliyuncs.com"), "{e}");
}

#[test]
fn messages_read_as_before() {
    // Conditions, Events and flag errors show these texts; they must not drift.
    assert_eq!(
        EndpointPolicy::parse(" , ").expect_err("empty").to_string(),
        "no endpoint pattern given; use e.g. https://sae.<region>.aliyuncs.com"
    );
    assert_eq!(
        EndpointPolicy::parse("https://x.aliyuncs.com:0")
            .expect_err("port 0")
            .to_string(),
        "invalid endpoint pattern \"https://x.aliyuncs.com:0\": the port must be a number from 1 to 65535 or * (expected scheme://host[:port][/path], e.g. https://sae.<region>.aliyuncs.com or http://127.0.0.1:*)"
    );
    assert_eq!(
        policy("https://*.aliyuncs.com")
            .check("https://u@x.aliyuncs.com/")
            .expect_err("user info")
            .to_string(),
        "endpoint \"https://x.aliyuncs.com/\" carries user info; the operator's endpoint policy (--allowed-endpoints) allows only https://*.aliyuncs.com"
    );
}

#[test]
fn parsed_urls_check_the_same() {
    let p = EndpointPolicy::default();
    let url = Url::parse("https://sae.cn-beijing.aliyuncs.com/").expect("url");
    assert_eq!(p.check_url(&url), Ok(()));
}
