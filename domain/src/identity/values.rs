//! Identity values that parse instead of validate: past `parse`, a value is valid.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

const MAX_NAME: usize = 64;

fn parse_name(field: &'static str, value: &str) -> Result<String, DomainError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DomainError::invalid(
            field,
            "may hold only letters, digits and underscores ([_A-Za-z0-9]+)",
        ));
    }
    Ok(value.to_string())
}

/// A user's name: `[_A-Za-z0-9]+`, at most 64 characters, an anonymous user's generated
/// `anon-<16 hex digits>`, or a GitHub user's `github:<login>` (made at their first sign-in
/// with GitHub; see [`Username::github`]). It is also the id of the user's stream,
/// `user-<name>`.
///
/// A name keeps the case it was registered with (its stream, paths and tokens use it as is, so
/// users registered before names were compared without case keep working), but two users'
/// names may not differ only in case: see [`Username::same_name_as`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

/// What an anonymous user's generated name starts with. The dash keeps it out of the names
/// people register (`[_A-Za-z0-9]+`), so no one can register one.
const ANONYMOUS_PREFIX: &str = "anon-";

/// What a GitHub user's name starts with. The colon keeps it out of the names people register
/// (`[_A-Za-z0-9]+`), so no one can register one; an app token's actor name (`app:<app>`) is
/// no user's name either.
const GITHUB_PREFIX: &str = "github:";

/// The longest GitHub login (GitHub's own limit).
const MAX_GITHUB_LOGIN: usize = 39;

/// Names a person may not register: they read as someone else (`me` is the caller in
/// `/v1/users/me`, `anonymous` the route that makes anonymous users).
const RESERVED_NAMES: [&str; 2] = ["me", "anonymous"];

impl Username {
    /// A name as the log, tokens and paths hold it: a registered name, or an anonymous user's
    /// generated one (see [`Username::anonymous`]). Registration refuses more: see
    /// [`Username::parse_new`].
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if is_anonymous_name(value) {
            return Ok(Username(value.to_string()));
        }
        if let Some(login) = value.strip_prefix(GITHUB_PREFIX) {
            check_github_login(login)?;
            if login.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(DomainError::invalid(
                    "username",
                    format!(
                        "a GitHub user's name is lowercase: {GITHUB_PREFIX}{}",
                        login.to_ascii_lowercase()
                    ),
                ));
            }
            return Ok(Username(value.to_string()));
        }
        parse_name("username", value).map(Username)
    }

    /// `github:` then the GitHub login `login`, lowercased (GitHub compares logins without
    /// case): the user a GitHub sign-in acts as. A login is 1 to 39 letters, digits, dashes and
    /// underscores (an Enterprise Managed User's is `<name>_<shortcode>`), neither starting nor
    /// ending with a dash.
    pub fn github(login: &str) -> Result<Username, DomainError> {
        check_github_login(login)?;
        Ok(Username(format!(
            "{GITHUB_PREFIX}{}",
            login.to_ascii_lowercase()
        )))
    }

    /// The code (403) of the refusal of what a GitHub user may not have: a password (to set,
    /// change or reset: they sign in through GitHub only) or a token that outlives their GitHub
    /// sign-in (an API token, an app token).
    pub const GITHUB_USER: &'static str = "github_user";

    /// Whether this is a GitHub user's name (starts with `github:`).
    pub fn is_github(&self) -> bool {
        self.0.starts_with(GITHUB_PREFIX)
    }

    /// The GitHub login of a GitHub user's name (lowercased); `None` for any other name.
    pub fn github_login(&self) -> Option<&str> {
        self.0.strip_prefix(GITHUB_PREFIX)
    }

    /// A name a person registers: [`Username::parse`], less anonymous users' names and the
    /// reserved ones (`me`, `anonymous`, in any case).
    pub fn parse_new(value: &str) -> Result<Self, DomainError> {
        if value.starts_with(ANONYMOUS_PREFIX) {
            return Err(DomainError::invalid(
                "username",
                "may not start with \"anon-\": such names are anonymous users'",
            ));
        }
        if value
            .get(..GITHUB_PREFIX.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(GITHUB_PREFIX))
        {
            return Err(DomainError::invalid(
                "username",
                "may not start with \"github:\": github: names are GitHub users' (made when they sign in with GitHub)",
            ));
        }
        let name = Username::parse(value)?;
        if RESERVED_NAMES
            .iter()
            .any(|reserved| value.eq_ignore_ascii_case(reserved))
        {
            return Err(DomainError::invalid(
                "username",
                format!("{value:?} is reserved: choose another name"),
            ));
        }
        Ok(name)
    }

    /// `anon-` then 16 lowercase hex digits: an anonymous user's generated name.
    pub fn anonymous(random: [u8; 8]) -> Username {
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Username(format!("{ANONYMOUS_PREFIX}{hex}"))
    }

    /// Whether this is an anonymous user's name (starts with `anon-`).
    pub fn is_anonymous(&self) -> bool {
        self.0.starts_with(ANONYMOUS_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the two names are the same without regard to case: two users may not hold them
    /// both. Names are ASCII, so ASCII case folding is the whole of it.
    pub fn same_name_as(&self, other: &Username) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// A GitHub login: 1 to 39 of `[A-Za-z0-9_-]` (`_` is in Enterprise Managed Users' logins,
/// `<name>_<shortcode>`), neither first nor last a dash.
fn check_github_login(login: &str) -> Result<(), DomainError> {
    let valid = (1..=MAX_GITHUB_LOGIN).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !login.starts_with('-')
        && !login.ends_with('-');
    if !valid {
        return Err(DomainError::invalid(
            "username",
            format!(
                "a GitHub login is 1 to {MAX_GITHUB_LOGIN} letters, digits, dashes and underscores, neither starting nor ending with a dash"
            ),
        ));
    }
    Ok(())
}

/// `anon-` then exactly 16 lowercase hex digits.
fn is_anonymous_name(value: &str) -> bool {
    value.strip_prefix(ANONYMOUS_PREFIX).is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A team's name, with the same rule as a username.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamName(String);

impl TeamName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        parse_name("name", value).map(TeamName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password in clear, 6 to 50 characters, none of them a control character. It never leaves
/// memory: not serializable, and its `Debug` does not show it.
///
/// Control characters (NUL, line breaks, escape…) are refused whatever the way in (a JSON body,
/// `bosun admin create-user --password-stdin`): they cannot be typed reliably at a login
/// prompt, a line break would be cut by a line-oriented reader, and a NUL ends the string for
/// C tools. Logins compare against the stored hash without parsing, so an older password that
/// holds one still works.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// `field` names the input in the refusal (`password`, or `new` for a change).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, DomainError> {
        let length = value.chars().count();
        if !(6..=50).contains(&length) {
            return Err(DomainError::invalid(field, "must be 6 to 50 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                field,
                "may not contain control characters (such as NUL, a tab or a line break)",
            ));
        }
        Ok(Password(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An email address, compared without regard to case. Only its shape is checked: something@host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let value = value.trim();
        let valid = value.len() <= 254
            && value.split_once('@').is_some_and(|(local, host)| {
                !local.is_empty()
                    && !host.is_empty()
                    && !host.contains('@')
                    && host.contains('.')
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            });
        if !valid {
            return Err(DomainError::invalid("email", "is not an email address"));
        }
        Ok(Email(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An argon2 hash in PHC string form: what the log keeps instead of a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// The SHA-256 digest of a token, in lowercase hex: what the log keeps instead of the token.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenDigest(pub String);

/// The name a user gives one of their SSH keys: `[A-Za-z0-9_.-]`, 1 to 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty() || value.len() > MAX_NAME {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(DomainError::invalid(
                "name",
                "may hold only letters, digits, dots, dashes and underscores ([A-Za-z0-9_.-]+)",
            ));
        }
        Ok(KeyName(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key types a public key may be of: OpenSSH's current ones (DSA, which OpenSSH no longer
/// accepts, is refused).
pub const KEY_ALGORITHMS: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The longest public key line accepted (a 16384-bit RSA key is about 2.8 KB).
const MAX_PUBLIC_KEY: usize = 8192;

/// An SSH public key in OpenSSH's one-line form, `<type> <base64 blob> [comment]`: public, not
/// a secret. Parsing checks that the type is a known one and that the blob is base64 of the
/// wire form of a key of that type (length-prefixed strings, the first of them the type
/// itself); it keeps the line with single spaces between its parts. Two keys are the same key
/// when their type and blob are, whatever their comments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicKey(String);

impl PublicKey {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let invalid = |message: String| DomainError::invalid("key", message);
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid(
                "must be an SSH public key (ssh-ed25519 AAAA… comment)".into(),
            ));
        }
        if value.len() > MAX_PUBLIC_KEY {
            return Err(invalid(format!(
                "must be at most {MAX_PUBLIC_KEY} characters"
            )));
        }
        if value.contains("PRIVATE KEY") {
            return Err(invalid(
                "is a private key: send the public one (the .pub file) and keep this one secret"
                    .into(),
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(invalid(
                "must be one line, without control characters (such as a line break)".into(),
            ));
        }
        let mut words = value.split_whitespace();
        let algorithm = words.next().unwrap_or_default();
        let blob = words.next().unwrap_or_default();
        let comment = words.collect::<Vec<_>>().join(" ");
        if !KEY_ALGORITHMS.contains(&algorithm) {
            return Err(invalid(format!(
                "must start with its type, one of {}",
                KEY_ALGORITHMS.join(", ")
            )));
        }
        if blob.is_empty() {
            return Err(invalid(format!(
                "has no key after {algorithm:?}: expected {algorithm} <base64> [comment]"
            )));
        }
        use base64::Engine;
        let wire = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| invalid("the key after its type is not base64".into()))?;
        check_wire_form(algorithm, &wire)
            .map_err(|why| invalid(format!("is not a valid {algorithm} key: {why}")))?;
        let mut line = format!("{algorithm} {blob}");
        if !comment.is_empty() {
            line.push(' ');
            line.push_str(&comment);
        }
        Ok(PublicKey(line))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key type (`ssh-ed25519`…).
    pub fn algorithm(&self) -> &str {
        self.0.split(' ').next().unwrap_or_default()
    }

    /// The base64 blob: the key itself.
    pub fn blob(&self) -> &str {
        self.0.split(' ').nth(1).unwrap_or_default()
    }

    /// The same key (type and blob), whatever the comments.
    pub fn same_key_as(&self, other: &PublicKey) -> bool {
        self.algorithm() == other.algorithm() && self.blob() == other.blob()
    }
}

/// The length-prefixed strings (RFC 4251 `string`: a big-endian u32 length, then the bytes)
/// that make up `wire`, which must end with the last of them.
fn ssh_strings(mut wire: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut strings = Vec::new();
    while !wire.is_empty() {
        let Some((length, rest)) = wire.split_first_chunk::<4>() else {
            return Err("it ends inside a length");
        };
        let length = u32::from_be_bytes(*length) as usize;
        if rest.len() < length {
            return Err("it is shorter than its lengths say");
        }
        let (string, rest) = rest.split_at(length);
        strings.push(string);
        wire = rest;
    }
    Ok(strings)
}

/// Whether `wire` is the wire form of a public key of type `algorithm`: the type's name, then
/// its fields (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709 §4, OpenSSH's PROTOCOL.u2f).
fn check_wire_form(algorithm: &str, wire: &[u8]) -> Result<(), String> {
    let strings = ssh_strings(wire)?;
    let Some((name, fields)) = strings.split_first() else {
        return Err("it is empty".into());
    };
    if *name != algorithm.as_bytes() {
        return Err(format!(
            "it holds a key of type {:?}",
            String::from_utf8_lossy(name)
        ));
    }
    let curve = |fields: &[&[u8]], curve: &str| -> Result<(), String> {
        match fields {
            [name, point, ..] if *name == curve.as_bytes() && point.first() == Some(&4) => Ok(()),
            [name, ..] if *name != curve.as_bytes() => Err(format!("its curve is not {curve}")),
            _ => Err("its point is missing or not an uncompressed point".into()),
        }
    };
    match (algorithm, fields) {
        ("ssh-ed25519", [key]) if key.len() == 32 => Ok(()),
        ("sk-ssh-ed25519@openssh.com", [key, _application]) if key.len() == 32 => Ok(()),
        ("ssh-rsa", [exponent, modulus]) if !exponent.is_empty() && modulus.len() > 1 => Ok(()),
        ("ecdsa-sha2-nistp256", [_, _]) => curve(fields, "nistp256"),
        ("ecdsa-sha2-nistp384", [_, _]) => curve(fields, "nistp384"),
        ("ecdsa-sha2-nistp521", [_, _]) => curve(fields, "nistp521"),
        ("sk-ecdsa-sha2-nistp256@openssh.com", [_, _, _application]) => curve(fields, "nistp256"),
        _ => Err("its fields are not those of this key type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_refuses_other_characters_and_lengths() {
        for bad in ["", "a b", "ann-marie", "josé", "a/b", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "accepted {bad:?}");
        }
        for good in ["a", "Ann_Marie_2", &"x".repeat(64)] {
            assert_eq!(Username::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn anonymous_names_are_anon_then_16_hex_digits_and_parse_back() {
        let name = Username::anonymous([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(name.as_str(), "anon-0123456789abcdef");
        assert!(name.is_anonymous());
        assert_eq!(Username::parse(name.as_str()).unwrap(), name);
        assert!(!Username::parse("anon_1").unwrap().is_anonymous());
        for bad in [
            "anon-",
            "anon-0123",
            "anon-0123456789ABCDEF",
            "anon-0123456789abcdef0",
        ] {
            assert!(Username::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn registered_names_may_not_be_anonymous_or_reserved() {
        for bad in [
            "anon-0123456789abcdef",
            "anon-x",
            "me",
            "ME",
            "anonymous",
            "Anonymous",
        ] {
            assert!(
                matches!(
                    Username::parse_new(bad),
                    Err(DomainError::Invalid {
                        field: "username",
                        ..
                    })
                ),
                "accepted {bad:?}"
            );
        }
        for good in ["ann", "anon_1", "meg", "anonymously"] {
            assert_eq!(Username::parse_new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn github_names_are_github_then_a_lowercased_login() {
        let name = Username::github("Alice-Smith-2").unwrap();
        assert_eq!(name.as_str(), "github:alice-smith-2");
        assert!(name.is_github() && !name.is_anonymous());
        assert_eq!(name.github_login(), Some("alice-smith-2"));
        assert_eq!(Username::parse(name.as_str()).unwrap(), name);
        assert_eq!(
            Username::github(&"a".repeat(39)).unwrap().as_str().len(),
            46
        );
        assert!(!Username::parse("ann").unwrap().is_github());
        assert_eq!(Username::parse("ann").unwrap().github_login(), None);
        // An Enterprise Managed User's login: `<name>_<shortcode>`.
        assert_eq!(
            Username::github("Ann_Acme").unwrap().as_str(),
            "github:ann_acme"
        );
        assert!(Username::parse("github:ann_acme").is_ok());
        for bad in [
            "",
            "-ann",
            "ann-",
            "a.b",
            "a b",
            "josé",
            "a:b",
            &"a".repeat(40),
        ] {
            assert!(Username::github(bad).is_err(), "accepted login {bad:?}");
            assert!(
                Username::parse(&format!("github:{bad}")).is_err(),
                "accepted github:{bad:?}"
            );
        }
        // The log holds the lowercased login: another case is refused, naming the right one.
        match Username::parse("github:Alice") {
            Err(DomainError::Invalid { message, .. }) => {
                assert!(message.contains("github:alice"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        for bad in ["gitlab:ann", "github:", "GitHub:ann", "app:shop"] {
            assert!(Username::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn no_one_registers_a_github_name() {
        for bad in ["github:ann", "GITHUB:ann", "GitHub:Ann"] {
            match Username::parse_new(bad) {
                Err(DomainError::Invalid {
                    field: "username",
                    message,
                }) => assert!(message.contains("GitHub users'"), "{message}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(Username::parse_new("github").unwrap().as_str(), "github");
        assert_eq!(
            Username::parse_new("github_ann").unwrap().as_str(),
            "github_ann"
        );
    }

    #[test]
    fn usernames_are_the_same_name_without_regard_to_case() {
        let ann = Username::parse("ann").unwrap();
        assert!(ann.same_name_as(&Username::parse("ANN").unwrap()));
        assert!(ann.same_name_as(&Username::parse("aNn").unwrap()));
        assert!(!ann.same_name_as(&Username::parse("anna").unwrap()));
        assert_eq!(
            Username::parse("ANN").unwrap().as_str(),
            "ANN",
            "a name keeps its case"
        );
    }

    #[test]
    fn password_refuses_nul_and_other_control_characters() {
        for bad in [
            "secret\0pw",
            "\0\0\0\0\0\0",
            "secret\npw",
            "secret\tpw",
            "secret\u{7f}pw",
        ] {
            assert_eq!(
                Password::parse("password", bad).err(),
                Some(DomainError::invalid(
                    "password",
                    "may not contain control characters (such as NUL, a tab or a line break)"
                )),
                "accepted {bad:?}"
            );
        }
        assert!(matches!(
            Password::parse("new", "secret\0pw"),
            Err(DomainError::Invalid { field: "new", .. })
        ));
        assert!(Password::parse("password", "secret pw with spaces").is_ok());
    }

    #[test]
    fn password_must_be_6_to_50_characters() {
        assert!(Password::parse("password", "12345").is_err());
        assert!(Password::parse("password", &"p".repeat(51)).is_err());
        assert!(Password::parse("password", "123456").is_ok());
        assert!(Password::parse("password", &"é".repeat(50)).is_ok());
    }

    #[test]
    fn password_debug_hides_it() {
        let p = Password::parse("password", "secret-value").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn email_needs_a_local_part_and_a_host() {
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b@c.d"] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            Email::parse("Ann@Example.ORG").unwrap().as_str(),
            "ann@example.org"
        );
    }

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9YH+6nluXqa51cc8NgxU28IuiBL9VSYuwofqcXWYpfHVovHOXe8Z9FiCoaHeevI5A0hXtmC70xqM4MycG9/glIzTX3rWFWMPDeyvmaIf6Q4vlXBnt4vsAwTiIs30GjsOkVRH8cFCvZ53S8RpuluLYfUW6GvPoTy4JH+Bu5KlKvw==";
    const ECDSA256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGaAgRdmwj35NhZCFeO6D11E7wxhyISa+Lz4fVqgNT47Q0PPiISu0A6GQUrF7sNAJQbCmEjyjB1SP+ow2thMaqI= ann@laptop";
    const ECDSA384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBJ1dOnTbRhrU/hO/I2T81DNBHgmhkRKhNDNGT/6pgQJDXT+371zeoj07L49Z2YAKEsjJ4tBs+20CcNpny7rSqWvfFD9zc/B/d5M+OrOgrIOMhDF0BDd5jO6ANFBTC0TFKA== x";

    fn key_refusal(value: &str) -> String {
        match PublicKey::parse(value) {
            Err(DomainError::Invalid {
                field: "key",
                message,
            }) => message,
            other => panic!("{value:?} was not refused as a key: {other:?}"),
        }
    }

    #[test]
    fn key_names_are_letters_digits_dots_dashes_and_underscores() {
        for good in ["laptop", "work.key-2_old", "A", &"k".repeat(64)] {
            assert_eq!(KeyName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "my key", "a/b", "é", "x;y", &"k".repeat(65)] {
            assert!(
                matches!(
                    KeyName::parse(bad),
                    Err(DomainError::Invalid { field: "name", .. })
                ),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn public_keys_of_every_usual_type_parse_and_keep_their_comment() {
        for line in [ED25519, RSA, ECDSA256, ECDSA384] {
            assert_eq!(PublicKey::parse(line).unwrap().as_str(), line);
        }
        let key = PublicKey::parse(&format!("  {}  \t", ED25519.replace(' ', "   "))).unwrap();
        assert_eq!(
            key.as_str(),
            ED25519,
            "spaces between the parts are made single"
        );
        assert_eq!(key.algorithm(), "ssh-ed25519");
        assert_eq!(key.blob(), ED25519.split(' ').nth(1).unwrap());
        let bare = PublicKey::parse(RSA).unwrap();
        assert_eq!(
            bare.as_str().split(' ').count(),
            2,
            "no comment, none added"
        );
    }

    #[test]
    fn the_same_key_is_its_type_and_blob_whatever_the_comment() {
        let a = PublicKey::parse(ED25519).unwrap();
        let b = PublicKey::parse(&ED25519.replace("ann@laptop", "another comment")).unwrap();
        assert_ne!(a, b);
        assert!(a.same_key_as(&b));
        assert!(!a.same_key_as(&PublicKey::parse(RSA).unwrap()));
    }

    #[test]
    fn public_keys_are_refused_naming_key_when_they_are_not_openssh_public_keys() {
        let blob = ED25519.split(' ').nth(1).unwrap();
        assert!(key_refusal("").contains("SSH public key"));
        assert!(key_refusal("ssh-ed25519").contains("no key"));
        assert!(key_refusal(&format!("ssh-dss {blob}")).contains("must start with its type"));
        assert!(key_refusal(&format!("command=\"x\" ssh-ed25519 {blob}")).contains("its type"));
        assert!(key_refusal("ssh-ed25519 not*base64").contains("not base64"));
        // A blob of another type than the one named.
        let rsa_blob = RSA.split(' ').nth(1).unwrap();
        assert!(key_refusal(&format!("ssh-ed25519 {rsa_blob}")).contains("of type \"ssh-rsa\""));
        // Base64 of something else, and a key cut short.
        assert!(key_refusal("ssh-ed25519 aGVsbG8gd29ybGQ=").contains("valid ssh-ed25519"));
        assert!(key_refusal(&format!("ssh-ed25519 {}", &blob[..40])).contains("valid ssh-ed25519"));
        // The curve of an ECDSA key must be the one its type names.
        let p384 = ECDSA384.split(' ').nth(1).unwrap();
        assert!(key_refusal(&format!("ecdsa-sha2-nistp256 {p384}")).contains("valid"));
        // Two lines, a private key, and one too long.
        assert!(key_refusal(&format!("{ED25519}\n{RSA}")).contains("one line"));
        let private = "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA -----END OPENSSH PRIVATE KEY-----";
        let refusal = key_refusal(private);
        assert!(
            refusal.contains("private key") && !refusal.contains("b3Blbn"),
            "{refusal}"
        );
        assert!(key_refusal(&format!("{ED25519} {}", "c".repeat(9000))).contains("at most"));
    }
}
