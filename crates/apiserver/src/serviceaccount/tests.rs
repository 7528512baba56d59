use super::*;

fn signer() -> Signer {
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("generate");
    Signer::from_pkcs8(doc.as_ref()).expect("signer")
}

fn claims(now: i64) -> Claims {
    Claims {
        aud: vec![ISSUER.to_owned()],
        exp: now + 3600,
        iat: now,
        iss: ISSUER.to_owned(),
        jti: None,
        kubernetes: KubernetesClaim {
            namespace: "team".into(),
            serviceaccount: ObjectClaim { name: "builder".into(), uid: "sa-uid".into() },
            pod: Some(ObjectClaim { name: "web".into(), uid: "pod-uid".into() }),
        },
        nbf: now,
        sub: "system:serviceaccount:team:builder".into(),
    }
}

#[test]
fn tokens_round_trip_with_upstream_claims() {
    let s = signer();
    let now = 1_800_000_000;
    let token = s.sign(&claims(now)).expect("sign");
    assert!(looks_like_jwt(&token), "{token}");
    assert_eq!(s.verify(&token, now + 10), Ok(claims(now)));
    // The payload is plain JSON with upstream's claim names, so other verifiers can read it.
    let payload = token.split('.').nth(1).expect("payload");
    let json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    assert_eq!(json["kubernetes.io"]["serviceaccount"]["name"], "builder");
    assert_eq!(json["kubernetes.io"]["pod"]["uid"], "pod-uid");
    assert_eq!(json["sub"], "system:serviceaccount:team:builder");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().expect("h")).expect("b64"))
            .expect("json");
    assert_eq!(header["alg"], "ES256");
    let user = user_of(&claims(now));
    assert_eq!(user.name, "system:serviceaccount:team:builder");
    assert_eq!(user.groups, vec!["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]);
}

#[test]
fn forged_tampered_and_foreign_tokens_are_refused() {
    let s = signer();
    let now = 1_800_000_000;
    let token = s.sign(&claims(now)).expect("sign");
    // Another key's signature.
    let other = signer().sign(&claims(now)).expect("sign");
    assert_eq!(s.verify(&other, now), Err(TokenError::BadSignature));
    // Claims changed after signing: another service account.
    let mut forged = claims(now);
    forged.kubernetes.serviceaccount.name = "admin".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
    let parts: Vec<&str> = token.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(s.verify(&spliced, now), Err(TokenError::BadSignature));
    // "alg": "none" with no signature.
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), parts[1]);
    assert_eq!(s.verify(&none, now), Err(TokenError::BadSignature));
    // Garbage never panics.
    for junk in ["", "a.b", "a.b.c.d", "eyJ.eyJ.x", "...", "\u{e9}.\u{e9}.\u{e9}"] {
        assert!(s.verify(junk, now).is_err(), "{junk:?}");
    }
    // Another audience or issuer, properly signed.
    let mut aud = claims(now);
    aud.aud = vec!["vault".into()];
    assert_eq!(s.verify(&s.sign(&aud).expect("sign"), now), Err(TokenError::WrongAudience));
    let mut iss = claims(now);
    iss.iss = "https://elsewhere".into();
    assert!(matches!(s.verify(&s.sign(&iss).expect("sign"), now), Err(TokenError::WrongIssuer(_))));
}

#[test]
fn tokens_expire_and_do_not_start_early() {
    let s = signer();
    let now = 1_800_000_000;
    let token = s.sign(&claims(now)).expect("sign");
    assert!(s.verify(&token, now + 3599).is_ok());
    assert_eq!(s.verify(&token, now + 3600), Err(TokenError::Expired));
    assert_eq!(s.verify(&token, now - 1), Err(TokenError::NotYetValid));
    // A remembered token still expires.
    assert!(s.verify_cached(&token, now).is_ok());
    assert!(s.verify_cached(&token, now + 1).is_ok());
    assert_eq!(s.verify_cached(&token, now + 3600), Err(TokenError::Expired));
    // And a forged one is not remembered as good because a genuine one was.
    let other = signer().sign(&claims(now)).expect("sign");
    assert_eq!(s.verify_cached(&other, now), Err(TokenError::BadSignature));
}

#[test]
fn the_key_is_created_once_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Signer::load_or_create(dir.path()).expect("create");
    let token = first.sign(&claims(now_unix())).expect("sign");
    let again = Signer::load_or_create(dir.path()).expect("reload");
    assert!(again.verify(&token, now_unix()).is_ok(), "a restarted server accepts its earlier tokens");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join(KEY_FILE)).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(dir.path().join(KEY_FILE), "not a key").expect("write");
    assert!(Signer::load_or_create(dir.path()).is_err(), "a damaged key is reported, not replaced");
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

#[test]
fn admission_adds_the_token_volume_and_mounts() {
    let mut p = pod(json!({
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [
            {"name": "a", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "b", "image": "busybox", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }));
    admit_pod(&mut p, None, "x7k2q");
    let spec = &p["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["volumes"][1], token_volume("kube-api-access-x7k2q"));
    let vol = &spec["volumes"][1]["projected"];
    assert_eq!(vol["defaultMode"], 420);
    assert_eq!(vol["sources"][0]["serviceAccountToken"], json!({"expirationSeconds": 3607, "path": "token"}));
    assert_eq!(vol["sources"][1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(vol["sources"][2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
    let mount = json!({"name": "kube-api-access-x7k2q", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
    assert_eq!(spec["containers"][0]["volumeMounts"][1], mount);
    // A container that mounts the path itself is left alone.
    assert_eq!(spec["containers"][1]["volumeMounts"].as_array().map(Vec::len), Some(1));
    // The result is a valid Pod for the upstream type.
    assert_eq!(crate::resources::typed_check::<k8s_openapi::api::core::v1::Pod>(&p), Ok(vec![]));
}

#[test]
fn admission_respects_automount_on_the_pod_and_the_service_account() {
    let base = json!({"serviceAccountName": "robot", "containers": [{"name": "a", "image": "x"}]});
    let sa_off = json!({"metadata": {"name": "robot"}, "automountServiceAccountToken": false});
    let sa_on = json!({"metadata": {"name": "robot"}, "automountServiceAccountToken": true});

    let mut p = pod(base.clone());
    admit_pod(&mut p, Some(&sa_off), "aaaaa");
    assert_eq!(p["spec"]["serviceAccountName"], "robot");
    assert!(p["spec"]["volumes"].is_null() && p["spec"]["containers"][0]["volumeMounts"].is_null());

    // The pod's own setting wins over its ServiceAccount's, either way.
    let mut spec = base.clone();
    spec["automountServiceAccountToken"] = json!(true);
    let mut p = pod(spec);
    admit_pod(&mut p, Some(&sa_off), "aaaaa");
    assert_eq!(p["spec"]["volumes"][0]["name"], "kube-api-access-aaaaa");
    let mut spec = base.clone();
    spec["automountServiceAccountToken"] = json!(false);
    let mut p = pod(spec);
    admit_pod(&mut p, Some(&sa_on), "aaaaa");
    assert!(p["spec"]["volumes"].is_null());
}

#[test]
fn admission_reuses_an_existing_token_volume_and_skips_mirror_pods() {
    let mut p = pod(json!({
        "containers": [{"name": "a", "image": "x"}],
        "volumes": [token_volume("kube-api-access-old12")],
    }));
    admit_pod(&mut p, None, "new34");
    assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"][0]["name"], "kube-api-access-old12");

    let mut mirror = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
    let before = mirror.clone();
    admit_pod(&mut mirror, None, "zzzzz");
    assert_eq!(mirror, before);

    // Odd shapes do not panic.
    for mut odd in [json!({}), json!({"spec": 3}), pod(json!({"containers": "x"})), pod(json!({"containers": [1]}))] {
        admit_pod(&mut odd, None, "q");
    }
}
