//! The config's parsing, defaults and validation.

use super::*;
use crate::fetch::IsolationLevel;
use crate::net::BrokerCompat;
use crate::policy::ResetPolicySpec;

#[test]
fn fetch_answers_follow_the_link_unless_their_size_is_set() {
    let unset = Config::parse("").unwrap();
    assert_eq!(unset.fetch_options().max_bytes, FetchSize::FollowsLink);
    let in_file = Config::parse("[consumer]\nfetch_max_bytes = 4194304").unwrap();
    assert_eq!(
        in_file.fetch_options().max_bytes,
        FetchSize::Fixed(4_194_304)
    );
    let as_property =
        Config::parse_with("", &[("fetch.max.bytes".into(), "8388608".into())]).unwrap();
    assert_eq!(
        as_property.fetch_options().max_bytes,
        FetchSize::Fixed(8_388_608)
    );
}

#[test]
fn parses_a_full_config() {
    let config = Config::parse(
        r#"
        brokers = ["127.0.0.1:9092"]
        [net]
        request_timeout_ms = 5000
        [consumer]
        topics = ["a", "b"]
        from = "by_duration:PT2H"
        isolation_level = "read_committed"
        "#,
    )
    .unwrap();
    assert_eq!(config.brokers, ["127.0.0.1:9092"]);
    assert_eq!(config.net.request_timeout_ms, 5000);
    assert_eq!(config.net.connect_timeout_ms, 10_000);
    assert_eq!(config.consumer.topics, ["a", "b"]);
    assert_eq!(
        config.consumer.from,
        ResetPolicySpec::ByDuration(Duration::from_secs(7200))
    );
    assert_eq!(
        config.consumer.isolation_level,
        IsolationLevel::ReadCommitted
    );
}

#[test]
fn the_tansu_switch_reaches_connections_and_groups() {
    let kafka = Config::parse("[consumer]\ngroup = \"g\"\ntopics = [\"t\"]").unwrap();
    assert_eq!(
        kafka.pool_options().unwrap().connection.compat,
        BrokerCompat::Kafka
    );
    assert!(kafka.group_options().unwrap().subscription_generation);
    let tansu = Config::parse(
        "[net]\nbroker_compat = \"tansu-0.6\"\n[consumer]\ngroup = \"g\"\ntopics = [\"t\"]",
    )
    .unwrap();
    assert_eq!(
        tansu.pool_options().unwrap().connection.compat,
        BrokerCompat::Tansu06
    );
    assert!(!tansu.group_options().unwrap().subscription_generation);
    let error = Config::parse("[net]\nbroker_compat = \"tansu\"")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("broker_compat") && error.contains("tansu-0.6"),
        "{error}"
    );
}

#[test]
fn the_group_protocol_is_chosen_by_our_key_or_kafkas() {
    let config = Config::parse("[consumer]\ngroup = \"g\"\ngroup_protocol = \"consumer\"").unwrap();
    let options = config.group_options().unwrap();
    assert_eq!(options.protocol, GroupProtocol::Consumer);
    assert_eq!(options.remote_assignor, None);
    let properties = [
        ("group.id".to_string(), "g".to_string()),
        ("group.protocol".to_string(), "CONSUMER".to_string()),
        ("group.remote.assignor".to_string(), "range".to_string()),
    ];
    let options = Config::parse_with("", &properties)
        .unwrap()
        .group_options()
        .unwrap();
    assert_eq!(options.protocol, GroupProtocol::Consumer);
    assert_eq!(options.remote_assignor.as_deref(), Some("range"));
    let classic = Config::parse("[consumer]\ngroup = \"g\"").unwrap();
    assert_eq!(
        classic.group_options().unwrap().protocol,
        GroupProtocol::Classic
    );
}

#[test]
fn what_the_consumer_protocol_cannot_honour_is_refused_with_the_reason() {
    let refusal = |text: &str| Config::parse(text).unwrap_err().to_string();
    let error = refusal("[consumer]\ngroup_protocol = \"next\"");
    assert!(
        error.contains("consumer.group_protocol") && error.contains("classic"),
        "{error}"
    );
    let error = refusal(
        "[consumer]\ngroup_protocol = \"consumer\"\n\
         [[plugins.assignors]]\npath = \"fair.wasm\"",
    );
    assert!(
        error.contains("plugins.assignors")
            && error.contains("broker")
            && error.contains("classic"),
        "{error}"
    );
    let error = refusal("[consumer]\ngroup_protocol = \"consumer\"\nassignors = [\"roundrobin\"]");
    assert!(
        error.contains("consumer.assignors") && error.contains("group_remote_assignor"),
        "{error}"
    );
    let error = refusal("[consumer]\ngroup_remote_assignor = \"uniform\"");
    assert!(
        error.contains("consumer.group_remote_assignor") && error.contains("classic"),
        "{error}"
    );
}

#[test]
fn refuses_unknown_keys_and_names_them() {
    let error = Config::parse("[net]\nrequest_timout_ms = 5")
        .unwrap_err()
        .to_string();
    assert!(error.contains("request_timout_ms"), "{error}");
}

#[test]
fn refuses_bad_values_with_the_key() {
    let error = Config::parse("brokers = [\"localhost\"]")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("brokers") && error.contains("HOST:PORT"),
        "{error}"
    );
    let error = Config::parse("[net]\nrequest_timeout_ms = 0")
        .unwrap_err()
        .to_string();
    assert!(error.contains("net.request_timeout_ms"), "{error}");
    let error = Config::parse("[consumer]\nfetch_max_wait_ms = 40000")
        .unwrap_err()
        .to_string();
    assert!(error.contains("consumer.fetch_max_wait_ms"), "{error}");
    let error = Config::parse("[consumer]\nfrom = \"oldest\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("earliest, latest, none"), "{error}");
    let error = Config::parse("[consumer]\nassignors = [\"fair\"]")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("consumer.assignors") && error.contains("`fair`"),
        "{error}"
    );
    let error = Config::parse("[plugins]\nassignor_fallback = \"magic\"")
        .unwrap_err()
        .to_string();
    assert!(error.contains("plugins.assignor_fallback"), "{error}");
    let error = Config::parse("[consumer]\nheartbeat_interval_ms = 50000")
        .unwrap_err()
        .to_string();
    assert!(error.contains("consumer.heartbeat_interval_ms"), "{error}");
    let error = Config::default().require_brokers().unwrap_err().to_string();
    assert!(error.contains("--brokers"), "{error}");
}

#[test]
fn metadata_ages_and_the_topic_pattern_are_checked() {
    let config = Config::parse(
        "[net]\nmetadata_min_age_ms = 200\nmetadata_max_age_ms = 2000\n\
         [consumer]\ngroup = \"g\"\ntopic_pattern = \"^events-.*\"",
    )
    .unwrap();
    assert_eq!(
        config.metadata_options(),
        MetadataOptions {
            min_age: Duration::from_millis(200),
            max_age: Duration::from_secs(2),
        }
    );
    let pattern = config.group_options().unwrap().topic_pattern.unwrap();
    assert!(pattern.matches("events-1") && !pattern.matches("other"));
    assert_eq!(
        Config::default().metadata_options(),
        MetadataOptions::default()
    );
    for (text, key) in [
        ("[net]\nmetadata_min_age_ms = 0", "net.metadata_min_age_ms"),
        ("[net]\nmetadata_max_age_ms = 0", "net.metadata_max_age_ms"),
        (
            "[net]\nmetadata_min_age_ms = 5000\nmetadata_max_age_ms = 4000",
            "net.metadata_min_age_ms",
        ),
        (
            "[consumer]\ntopic_pattern = \"(unclosed\"",
            "consumer.topic_pattern",
        ),
    ] {
        let error = Config::parse(text).unwrap_err().to_string();
        assert!(error.contains(key), "{text}: {error}");
    }
}

/// Every way a config can be refused, with the message the user reads (the key, what is
/// wrong, and what to do).
#[test]
fn every_error_path_has_its_message() {
    let zero_keys = [
        ("net", "connect_timeout_ms"),
        ("net", "request_timeout_ms"),
        ("net", "idle_timeout_ms"),
        ("net", "reconnect_backoff_ms"),
        ("net", "reconnect_backoff_max_ms"),
        ("consumer", "retry_backoff_ms"),
        ("consumer", "retry_backoff_max_ms"),
        ("plugins", "deadline_ms"),
        ("consumer", "session_timeout_ms"),
        ("consumer", "rebalance_timeout_ms"),
        ("consumer", "max_poll_interval_ms"),
        ("consumer", "commit_timeout_ms"),
        ("consumer", "max_poll_records"),
        ("consumer", "max_buffered_bytes"),
        ("consumer", "shutdown_timeout_ms"),
    ];
    for (section, key) in zero_keys {
        let error = Config::parse(&format!("[{section}]\n{key} = 0"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!("invalid value for `{section}.{key}`: must be greater than 0")
        );
    }
    let cases: &[(&str, &str)] = &[
        (
            "brokers = [\"localhost\"]",
            "invalid value for `brokers`: `localhost` is not HOST:PORT",
        ),
        (
            "brokers = [\":9092\"]",
            "invalid value for `brokers`: `:9092` has no host",
        ),
        (
            "brokers = [\"h:0\"]",
            "invalid value for `brokers`: `h:0` has no valid port (1-65535)",
        ),
        (
            "[net]\nmax_frame_bytes = 10",
            "invalid value for `net.max_frame_bytes`: 10 is too small (at least 1024)",
        ),
        (
            "[net]\nmetadata_min_age_ms = 5000\nmetadata_max_age_ms = 4000",
            "invalid value for `net.metadata_min_age_ms`: 5000 must not be above \
             net.metadata_max_age_ms (4000): the floor under refreshes cannot be higher than \
             the ceiling",
        ),
        (
            "[consumer]\nfetch_max_wait_ms = 40000",
            "invalid value for `consumer.fetch_max_wait_ms`: 40000 must be below \
             net.request_timeout_ms (30000) or every idle long poll times out",
        ),
        (
            "[consumer]\nheartbeat_interval_ms = 50000",
            "invalid value for `consumer.heartbeat_interval_ms`: 50000 must be below \
             consumer.session_timeout_ms (45000); a third of it is usual",
        ),
        (
            "[consumer]\nassignors = []",
            "invalid value for `consumer.assignors`: name at least one assignor (range, \
             roundrobin, sticky, cooperative-sticky)",
        ),
        (
            "[consumer]\nassignors = [\"fair\"]",
            "invalid value for `consumer.assignors`: `fair` is not an assignor; use range, \
             roundrobin, sticky or cooperative-sticky, or load a plugin of that name \
             ([[plugins.assignors]])",
        ),
        (
            "[plugins]\nassignor_fallback = \"magic\"",
            "invalid value for `plugins.assignor_fallback`: `magic` is not a built-in \
             assignor; use range, roundrobin, sticky or cooperative-sticky",
        ),
        (
            "[consumer]\nfetch_max_bytes = -1",
            "invalid value for `consumer.fetch_max_bytes`: fetch_max_bytes and \
             max_partition_fetch_bytes must be positive",
        ),
        (
            "[security]\nprotocol = \"TLS\"",
            "invalid value for `security.protocol`: `TLS` is not a security protocol; use \
             PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            "[security]\nca_file = \"ca.pem\"",
            "invalid value for `security.ca_file`: is set but security.protocol is \
             PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
        ),
        (
            "[security]\nprotocol = \"SASL_PLAINTEXT\"\nverify_hostname = false",
            "invalid value for `security.verify_hostname`: is set but security.protocol is \
             SASL_PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
        ),
        (
            "[security]\nprotocol = \"SSL\"\ncert_file = \"c.pem\"",
            "invalid value for `security.cert_file`: a client certificate needs its key: \
             set both security.cert_file and security.key_file (ssl.certificate.location, \
             ssl.key.location), or neither",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nsasl_username = \"u\"",
            "invalid value for `security.sasl_username`: is set but security.protocol is \
             SSL, which does not use SASL: use SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"",
            "invalid value for `security.sasl_mechanism`: security.protocol SASL_SSL needs \
             a mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (sasl.mechanism)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"GSSAPI\"",
            "invalid value for `security.sasl_mechanism`: `GSSAPI` is not supported; use \
             PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI is not)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"",
            "invalid value for `security.oauth_token_endpoint`: OAUTHBEARER needs a token: \
             set security.oauth_token_endpoint (sasl.oauthbearer.token.endpoint.url) with \
             oauth_client_id and oauth_client_secret; or, for a broker with Kafka's \
             unsecured validator only, security.oauth_unsecured_claims = { sub = \"...\" } \
             (unsecuredLoginStringClaim_sub in sasl.jaas.config)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_token_endpoint = \"ftp://idp/token\"",
            "invalid value for `security.oauth_token_endpoint`: `ftp://idp/token` is not an \
             http:// or https:// URL",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_token_endpoint = \"https://idp/token\"\noauth_client_id = \"c\"",
            "invalid value for `security.oauth_client_secret`: the token endpoint needs the \
             client secret: security.oauth_client_secret_file (a file holding it) or \
             security.oauth_client_secret (sasl.oauthbearer.client.credentials.client.secret, \
             or clientSecret in sasl.jaas.config)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_unsecured_claims = { name = \"alice\" }",
            "invalid value for `security.oauth_unsecured_claims`: an unsecured token needs \
             its principal claim `sub` (unsecuredLoginStringClaim_sub in sasl.jaas.config)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_unsecured_claims = { sub = \"alice\" }\nsasl_username = \"alice\"",
            "invalid value for `security.sasl_username`: OAUTHBEARER authenticates with a \
             token, not a user and password: set security.oauth_client_id and \
             oauth_client_secret (the identity provider's client) instead",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_unsecured_claims = { sub = \"alice\" }\n\
             oauth_extensions = { auth = \"x\" }",
            "invalid value for `security.oauth_extensions`: `auth`: an extension's name is \
             letters only, and not `auth`",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"OAUTHBEARER\"\n\
             oauth_unsecured_claims = { sub = \"alice\" }\n\
             oauth_refresh_window_factor = 0.2",
            "invalid value for `security.oauth_refresh_window_factor`: 0.2 is outside \
             0.5..=1 (Kafka's range)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password = \"p\"\noauth_client_id = \"c\"",
            "invalid value for `security.oauth_client_id`: is set but \
             security.sasl_mechanism is PLAIN: OAUTHBEARER keys need sasl_mechanism = \
             \"OAUTHBEARER\"",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"",
            "invalid value for `security.sasl_username`: security.protocol SASL_SSL needs \
             a user name (sasl.username)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"",
            "invalid value for `security.sasl_password`: security.protocol SASL_SSL needs a \
             password: security.sasl_password_file (a file holding it) or \
             security.sasl_password (sasl.password)",
        ),
        (
            "[security]\nprotocol = \"SASL_SSL\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password = \"p\"\nsasl_password_file = \"f\"",
            "invalid value for `security.sasl_password`: set security.sasl_password or \
             security.sasl_password_file, not both",
        ),
        (
            "[security]\nkeystore_file = \"k.p12\"",
            "invalid value for `security.keystore_file`: is set but security.protocol is \
             PLAINTEXT, which does not use TLS: use SSL or SASL_SSL",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nkeystore_file = \"k.p12\"\n\
             cert_file = \"c.pem\"\nkey_file = \"c.key\"",
            "invalid value for `security.keystore_file`: the client certificate comes from \
             a keystore or from security.cert_file and security.key_file, not both",
        ),
        (
            "[security]\nprotocol = \"SSL\"\ntruststore_file = \"t.p12\"\n\
             ca_file = \"ca.pem\"",
            "invalid value for `security.truststore_file`: the CAs come from a truststore \
             (PKCS#12) or from security.ca_file (PEM), not both",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nkeystore_file = \"k.p12\"\n\
             keystore_password = \"p\"\nkeystore_password_file = \"f\"",
            "invalid value for `security.keystore_password`: set \
             security.keystore_password or security.keystore_password_file, not both",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nkeystore_password = \"p\"",
            "invalid value for `security.keystore_password`: a keystore password without a \
             keystore: set security.keystore_file (ssl.keystore.location, a PKCS#12 file); \
             a PEM key store needs no password (an encrypted key's is ssl.key.password)",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nca_file = \"ca.pem\"\n\
             truststore_password = \"p\"",
            "invalid value for `security.truststore_password`: a truststore password \
             without a truststore: set security.truststore_file (ssl.truststore.location, \
             a PKCS#12 file); a PEM CA file needs no password",
        ),
        (
            "[security]\nprotocol = \"SSL\"\nkey_password_file = \"f\"",
            "invalid value for `security.key_password`: a key password without a key: set \
             security.keystore_file or security.key_file",
        ),
    ];
    for (text, expected) in cases {
        let error = Config::parse(text).unwrap_err().to_string();
        assert_eq!(&error, expected, "{text}");
    }
    // Pattern and reset-policy texts come from their parsers; the key leads.
    let error = Config::parse("[consumer]\ntopic_pattern = \"(unclosed\"")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(
            "invalid value for `consumer.topic_pattern`: `(unclosed` is not a valid regular \
             expression: "
        ),
        "{error}"
    );
    let error = Config::parse("[consumer]\nfrom = \"oldest\"")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("config file <text> is not valid: ")
            && error.contains("earliest, latest, none"),
        "{error}"
    );
    let error = Config::default().require_brokers().unwrap_err().to_string();
    assert_eq!(
        error,
        "invalid value for `brokers`: no broker given: pass --brokers HOST:PORT or set \
         `brokers` in the config file"
    );
    let error = Config::load(Path::new("/nonexistent/wasmkafka.toml")).unwrap_err();
    let ConfigError::Read { source, .. } = &error else {
        panic!("not a read error: {error:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        crate::error_chain::Chain(&error).to_string(),
        "cannot read config file /nonexistent/wasmkafka.toml: No such file or directory (os \
         error 2)"
    );
}

/// The files `[security]` names are read at start-up: a missing or wrong one is refused
/// there, with the file and the fix.
#[test]
fn security_files_are_checked_when_the_pool_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("truststore.jks");
    std::fs::write(&not_pem, b"\xfe\xed\xfe\xed").unwrap();
    let missing = dir.path().join("missing.pem");
    let build = |text: String| {
        Config::parse(&text)
            .unwrap()
            .pool_options()
            .unwrap_err()
            .to_string()
    };
    let error = build(format!(
        "[security]\nprotocol = \"SSL\"\nca_file = \"{}\"",
        not_pem.display()
    ));
    assert_eq!(
        error,
        format!(
            "TLS setup ([security]): the certificate file {}: no PEM certificate \
             (-----BEGIN CERTIFICATE-----) in it; a PKCS#12 store (.p12, .pfx) is read \
             from security.truststore_file or security.keystore_file, a JKS one must be \
             converted to PKCS#12 first",
            not_pem.display()
        )
    );
    // A JKS store named as a keystore, and a file that is not PKCS#12 as a truststore.
    let error = build(format!(
        "[security]\nprotocol = \"SSL\"\nkeystore_file = \"{}\"",
        not_pem.display()
    ));
    assert_eq!(
        error,
        format!(
            "TLS setup ([security]): the keystore {}: a JKS key store, which is not \
             supported: convert it to PKCS#12 (`keytool -importkeystore -srckeystore k.jks \
             -destkeystore k.p12 -deststoretype PKCS12`) and set the type to PKCS12",
            not_pem.display()
        )
    );
    let garbage = dir.path().join("truststore.p12");
    std::fs::write(&garbage, b"\x30\x03\x01\x02").unwrap();
    let error = build(format!(
        "[security]\nprotocol = \"SSL\"\ntruststore_file = \"{}\"\n\
         truststore_password = \"p\"",
        garbage.display()
    ));
    assert!(
        error.starts_with(&format!(
            "TLS setup ([security]): the truststore {}: not a PKCS#12 file (",
            garbage.display()
        )),
        "{error}"
    );
    assert!(!error.contains("\"p\""), "{error}");
    let error = build(format!(
        "[security]\nprotocol = \"SSL\"\nca_file = \"{}\"",
        missing.display()
    ));
    assert!(
        error.starts_with(&format!(
            "TLS setup ([security]): the certificate file {}: ",
            missing.display()
        )),
        "{error}"
    );
    let error = build(format!(
        "[security]\nprotocol = \"SASL_PLAINTEXT\"\nsasl_mechanism = \"PLAIN\"\n\
         sasl_username = \"u\"\nsasl_password_file = \"{}\"",
        missing.display()
    ));
    assert_eq!(
        error,
        format!(
            "invalid value for `security.sasl_password_file`: cannot read {}: No such file \
             or directory (os error 2)",
            missing.display()
        )
    );
}
