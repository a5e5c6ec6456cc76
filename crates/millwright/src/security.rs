//! `millwright user|token|audit|certs`: the shell around mw-security. Every change is written to
//! the audit trail (`DATA_DIR/audit/audit.jsonl`) with the local OS user as the actor; no
//! secret is ever printed except a new token, once, on standard output.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mw_security::audit::{self, AuditEntry, AuditWriter};
use mw_security::{HashParams, Role, TokenStore, UserStore, certs, security_dir};

#[derive(Args, Debug, Clone)]
pub struct DataDir {
    /// Millwright's data directory (users and tokens in DIR/security, the audit trail in DIR/audit).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "millwright-data",
        env = "MILLWRIGHT_DATA_DIR"
    )]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is prompted twice on a terminal, else read as one line from stdin.
    Add {
        name: String,
        /// viewer, operator, engineer or admin.
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List users (name, role, state, creation time).
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Set a user's password (prompted, or one line from stdin).
    Passwd {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Disable a user: logins are refused until `user enable`.
    Disable {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Enable a disabled user again.
    Enable {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Delete a user.
    Del {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Measure the cost of one password check with the argon2id parameters in use (or others).
    Bench {
        /// Hashes to time.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        iterations: u32,
        /// Memory in KiB (default: what new hashes use).
        #[arg(long, value_name = "KIB")]
        m_kib: Option<u32>,
        /// Passes (default: what new hashes use).
        #[arg(long, value_name = "N")]
        t: Option<u32>,
        /// Lanes (default: what new hashes use).
        #[arg(long, value_name = "N")]
        p: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a role; it is printed once on stdout and stored only as a hash.
    Create {
        /// viewer, operator, engineer or admin.
        #[arg(long)]
        role: Role,
        /// Lifetime: a number and s, m, h, d or w (e.g. 30d); at most 366 days.
        #[arg(long, value_parser = mw_security::parse_expiry)]
        expires: std::time::Duration,
        /// What the token is for (shown in `token list` and the audit trail).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List tokens (id, name, role, expiry, state); never their secrets.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke a token by its id (the 16 hex digits after `mw_`).
    Revoke {
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain: exit 0 if intact, 1 naming the first bad record.
    Verify {
        /// Also require the last record's hash to be this (as printed by an earlier verify):
        /// catches records removed from the end.
        #[arg(long, value_name = "SHA256")]
        head: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Args, Debug)]
pub struct CertDir {
    /// Certificate directory (default: DATA_DIR/security/certs).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDir,
}

impl CertDir {
    fn path(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| security_dir(&self.data.data_dir).join("certs"))
    }
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create a CA, a server certificate for the hosts, and client certificates.
    Init {
        #[command(flatten)]
        dir: CertDir,
        /// Host names and addresses of the server certificate, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "NAMES",
            default_value = "localhost,127.0.0.1,::1"
        )]
        hosts: Vec<String>,
        /// A client certificate for this user name (CN); repeat or separate with commas.
        #[arg(long, value_delimiter = ',', value_name = "NAME")]
        client: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Show every certificate: subject, SANs, issuer, validity, SHA-256 fingerprint.
    List {
        #[command(flatten)]
        dir: CertDir,
    },
    /// Trust a CA (PEM file) for client certificates.
    Trust {
        file: PathBuf,
        #[command(flatten)]
        dir: CertDir,
    },
}

/// The actor of CLI actions: the local OS user.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            // No login name in the environment (a service, a container): the numeric uid.
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(format!("uid={}", uid.split_whitespace().next()?))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{user}")
}

/// Opens the audit trail (refusing a damaged one), runs `f`, and records its outcome (`ok`, or
/// `failed` with the error). The trail is opened first, so nothing changes that cannot be
/// audited.
fn audited<T>(
    data_dir: &Path,
    action: &str,
    target: &str,
    detail: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let mut w = AuditWriter::open_data_dir(data_dir).context("nothing was changed")?;
    let result = f();
    let (outcome, detail) = match &result {
        Ok(_) => ("ok", detail.to_owned()),
        Err(e) => ("failed", format!("{detail} {e:#}").trim().to_owned()),
    };
    let recorded = w
        .record(&AuditEntry::new(actor(), action, target, outcome, detail))
        .with_context(|| format!("{action} {target}: the audit record could not be written"));
    let v = result?;
    recorded?;
    Ok(v)
}

/// A new password: prompted twice on a terminal, else one line of stdin.
fn read_new_password(name: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("New password for {name}: "))
            .context("cannot read the password from the terminal")?;
        let b = rpassword::prompt_password("Repeat it: ")
            .context("cannot read the password from the terminal")?;
        if a != b {
            bail!("the two passwords differ; nothing was changed");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let pw = line.strip_suffix('\n').unwrap_or(&line);
        let pw = pw.strip_suffix('\r').unwrap_or(pw);
        if pw.is_empty() {
            bail!("no password on standard input (give it as one line, or run on a terminal)");
        }
        Ok(pw.to_owned())
    }
}

fn time(ns: i64) -> String {
    mw_model::format_rfc3339_ns(ns)
}

pub fn user(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add { name, role, dir } => {
            let d = dir.data_dir;
            let mut store = UserStore::open(&security_dir(&d))?;
            audited(&d, "user.add", &name, &format!("role={role}"), || {
                mw_security::validate_name(&name)?;
                if store.get(&name).is_some() {
                    bail!(
                        "user {name:?} already exists (use `user passwd` to change its password)"
                    );
                }
                let pw = read_new_password(&name)?;
                Ok(store.add(&name, role, &pw)?)
            })?;
            eprintln!("added user {name} ({role})");
        }
        UserCommand::List { dir } => {
            let store = UserStore::open(&security_dir(&dir.data_dir))?;
            let mut out = format!("{:<32} {:<9} {:<9} CREATED\n", "NAME", "ROLE", "STATE");
            for u in store.list() {
                let state = if u.disabled { "disabled" } else { "active" };
                out.push_str(&format!(
                    "{:<32} {:<9} {:<9} {}\n",
                    u.name,
                    u.role.as_str(),
                    state,
                    time(u.created_ns)
                ));
            }
            crate::cli::write_stdout(out.as_bytes())?;
        }
        UserCommand::Passwd { name, dir } => {
            let d = dir.data_dir;
            let mut store = UserStore::open(&security_dir(&d))?;
            audited(&d, "user.passwd", &name, "", || {
                if store.get(&name).is_none() {
                    bail!("no user named {name:?}");
                }
                let pw = read_new_password(&name)?;
                Ok(store.set_password(&name, &pw)?)
            })?;
            eprintln!("password of {name} changed");
        }
        UserCommand::Disable { name, dir } => set_disabled(&dir.data_dir, &name, true)?,
        UserCommand::Enable { name, dir } => set_disabled(&dir.data_dir, &name, false)?,
        UserCommand::Del { name, dir } => {
            let d = dir.data_dir;
            let mut store = UserStore::open(&security_dir(&d))?;
            audited(&d, "user.del", &name, "", || Ok(store.remove(&name)?))?;
            eprintln!("deleted user {name}");
        }
        UserCommand::Bench {
            iterations,
            m_kib,
            t,
            p,
        } => bench(iterations, m_kib, t, p)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn set_disabled(d: &Path, name: &str, disabled: bool) -> Result<()> {
    let mut store = UserStore::open(&security_dir(d))?;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audited(d, action, name, "", || {
        Ok(store.set_disabled(name, disabled)?)
    })?;
    eprintln!("{name} {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

fn bench(iterations: u32, m_kib: Option<u32>, t: Option<u32>, p: Option<u32>) -> Result<()> {
    let d = HashParams::DEFAULT;
    let params = HashParams {
        m_kib: m_kib.unwrap_or(d.m_kib),
        t: t.unwrap_or(d.t),
        p: p.unwrap_or(d.p),
    };
    let dir = std::env::temp_dir().join(format!("millwright-bench-{}", std::process::id()));
    let mut store = UserStore::open(&dir)?.with_params(params);
    store.add("bench", Role::Viewer, "a benchmark passphrase")?;
    let mut times = Vec::new();
    for _ in 0..iterations {
        let t0 = Instant::now();
        let ok = store
            .verify_password("bench", "a benchmark passphrase")
            .is_ok();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        if !ok {
            bail!("the benchmark password did not verify");
        }
    }
    let mut unknown = Vec::new();
    for _ in 0..iterations {
        let t0 = Instant::now();
        let _ = store.verify_password("nobody", "a benchmark passphrase");
        unknown.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let out = format!(
        "argon2id m={} KiB t={} p={}: one password check takes {:.1} ms (median of {iterations}, min {:.1} ms); \
         unknown user {:.1} ms; {} MiB per concurrent check; ~{:.0} checks/s per core\n",
        params.m_kib,
        params.t,
        params.p,
        median(&mut times),
        min,
        median(&mut unknown),
        params.m_kib / 1024,
        1000.0 / median(&mut times.clone()),
    );
    crate::cli::write_stdout(out.as_bytes())
}

pub fn token(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Create {
            role,
            expires,
            name,
            dir,
        } => {
            let d = dir.data_dir;
            let mut store = TokenStore::open(&security_dir(&d))?;
            let detail = format!("role={role} expires_in={}s", expires.as_secs());
            let t = audited(&d, "token.create", &name, &detail, || {
                Ok(store.create(&name, role, expires, &actor())?)
            })?;
            eprintln!(
                "token {} ({name}, {role}) expires {}; it is shown only now:",
                t.id,
                time(t.expires_ns)
            );
            crate::cli::write_stdout(format!("{}\n", t.token).as_bytes())?;
        }
        TokenCommand::List { dir } => {
            let store = TokenStore::open(&security_dir(&dir.data_dir))?;
            let now = mw_model::now_ns();
            let mut out = format!(
                "{:<16} {:<20} {:<9} {:<8} {:<24} CREATED BY\n",
                "ID", "NAME", "ROLE", "STATE", "EXPIRES"
            );
            for t in store.list() {
                let state = if t.revoked {
                    "revoked"
                } else if now >= t.expires_ns {
                    "expired"
                } else {
                    "active"
                };
                out.push_str(&format!(
                    "{:<16} {:<20} {:<9} {:<8} {:<24} {}\n",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    state,
                    time(t.expires_ns),
                    t.created_by
                ));
            }
            crate::cli::write_stdout(out.as_bytes())?;
        }
        TokenCommand::Revoke { id, dir } => {
            let d = dir.data_dir;
            let mut store = TokenStore::open(&security_dir(&d))?;
            let t = audited(&d, "token.revoke", &id, "", || Ok(store.revoke(&id)?))?;
            eprintln!("token {} ({}) revoked", t.id, t.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(cmd: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::Verify { head, dir } = cmd;
    let path = audit::audit_dir(&dir.data_dir).join(audit::FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "{}: no audit trail (nothing was recorded yet)",
                path.display()
            );
            Vec::new()
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match audit::verify(&bytes, false) {
        Ok(v) => {
            if let Some(h) = head.filter(|h| !h.eq_ignore_ascii_case(&v.head)) {
                eprintln!(
                    "{}: the chain is intact but its head is {} where {h} was expected: \
                     records were removed from the end, or the last one changed",
                    path.display(),
                    v.head
                );
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "{}: OK — {} record(s), head {}",
                path.display(),
                v.records,
                v.head
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}:{e}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn certs(cmd: CertsCommand) -> Result<ExitCode> {
    match cmd {
        CertsCommand::Init {
            dir,
            hosts,
            client,
            force,
        } => {
            let path = dir.path();
            let detail = format!("hosts={} clients={}", hosts.join(","), client.join(","));
            let written = audited(
                &dir.data.data_dir,
                "certs.init",
                &path.display().to_string(),
                &detail,
                || Ok(certs::init(&path, &hosts, &client, force)?),
            )?;
            for p in written {
                println!("wrote {}", p.display());
            }
        }
        CertsCommand::List { dir } => {
            let mut out = String::new();
            for c in certs::list(&dir.path())? {
                out.push_str(&format!(
                    "{}\n  subject     {}\n  issuer      {}\n  SANs        {}\n  valid       {} .. {}\n  CA          {}\n  SHA-256     {}\n",
                    c.path.display(),
                    c.subject,
                    c.issuer,
                    if c.sans.is_empty() { "-".to_owned() } else { c.sans.join(", ") },
                    time(c.not_before_ns),
                    time(c.not_after_ns),
                    if c.is_ca { "yes" } else { "no" },
                    c.fingerprint
                ));
            }
            crate::cli::write_stdout(out.as_bytes())?;
        }
        CertsCommand::Trust { file, dir } => {
            let path = dir.path();
            let added = audited(
                &dir.data.data_dir,
                "certs.trust",
                &file.display().to_string(),
                "",
                || Ok(certs::trust(&path, &file)?),
            )?;
            for p in added {
                println!("trusted {}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
