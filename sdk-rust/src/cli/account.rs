//! `upload`, `modules`, `whoami`, `usage` and `keys`.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::json;
use wasmwiz::{
    util::{format_bytes, parse_duration},
    ApiKeyInfo, Client, ModuleInfo, NewApiKey, NewKey, Usage,
};

use super::{print_json, progress, proto_time, rfc3339, table};
use crate::{failure, Cli, CliResult, Failure};

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `wasmwiz upload` flags.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The .wasm file.
    #[arg(value_name = "MODULE.wasm")]
    pub module: String,
    /// Upload even if the server already has the module.
    #[arg(long)]
    pub force: bool,
    /// Print the module's details as JSON (instead of its sha256).
    #[arg(long)]
    pub json: bool,
}

/// `wasmwiz modules ...`.
#[derive(Debug, Subcommand)]
pub enum ModulesCommand {
    /// List the modules stored by this account, newest first.
    #[command(alias = "list")]
    Ls(JsonFlag),
    /// Show one module's size, imports and exports.
    Info {
        /// The module's sha256.
        sha256: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove modules from this account.
    #[command(alias = "delete")]
    Rm {
        /// The modules' sha256s.
        #[arg(required = true)]
        sha256: Vec<String>,
    },
}

/// `wasmwiz usage` flags.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// How many days back, today included.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Admin: another user's usage.
    #[arg(long, value_name = "EMAIL", conflicts_with = "all")]
    pub email: Option<String>,
    /// Admin: everyone's usage.
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `wasmwiz keys ...` (admin; `--mine` uses your own account instead).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the secret alone on the last line of stdout.
    Create {
        /// The user (created when unknown). Required unless --mine.
        #[arg(long, required_unless_present = "mine")]
        email: Option<String>,
        /// The user's tier (free, basic, pro, unlimited, ...); sets it.
        #[arg(long)]
        tier: Option<String>,
        /// Make it an admin key.
        #[arg(long)]
        admin: bool,
        /// A label for listings.
        #[arg(long, default_value = "")]
        label: String,
        /// The key stops working after this long (e.g. 30m, 24h).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expires_in: Option<Duration>,
        /// A new key for yourself (same tier) instead of admin creation.
        #[arg(long, conflicts_with_all = ["email", "tier", "admin"])]
        mine: bool,
    },
    /// List keys (all users', or one user's with --email; yours with --mine).
    #[command(alias = "list")]
    Ls {
        /// Only this user's keys.
        #[arg(long, conflicts_with = "mine")]
        email: Option<String>,
        /// Your own keys.
        #[arg(long)]
        mine: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id (the `<id>` of `wwz_<id>_<secret>`).
    Revoke {
        /// The key id.
        key_id: String,
        /// Revoke one of your own keys.
        #[arg(long)]
        mine: bool,
    },
}

fn module_json(m: &ModuleInfo) -> serde_json::Value {
    json!({
        "sha256": m.sha256,
        "size": m.size,
        "already_existed": m.already_existed,
        "created_at": rfc3339(m.created_at),
        "import_count": m.import_count,
        "export_count": m.export_count,
        "imports": m.imports.iter().map(|i| json!({"module": i.module, "name": i.name, "kind": i.kind})).collect::<Vec<_>>(),
        "exports": m.exports.iter().map(|e| json!({"name": e.name, "kind": e.kind})).collect::<Vec<_>>(),
    })
}

/// `wasmwiz upload`: prints the sha256 (stdout) and what happened (stderr).
pub async fn upload(cli: &Cli, client: &Client, args: &UploadArgs) -> CliResult {
    let loaded = super::module::load(&args.module, false)?;
    if loaded.path.is_none() {
        return Err(Failure::usage(format!("{}: no such file", args.module)));
    }
    super::module::check_size(cli, client, &loaded).await?;
    let info = client
        .upload(loaded.module)
        .force(args.force)
        .on_progress(progress::reporter(args.module.clone(), cli.quiet))
        .await
        .map_err(|e| failure(cli, &e))?;
    if args.json {
        print_json(&module_json(&info));
    } else {
        if !cli.quiet {
            eprintln!(
                "wasmwiz: {} {} ({})",
                if info.already_existed {
                    "already stored"
                } else {
                    "stored"
                },
                args.module,
                format_bytes(info.size)
            );
        }
        println!("{}", info.sha256);
    }
    Ok(0)
}

/// `wasmwiz modules ls|info|rm`.
pub async fn modules(cli: &Cli, client: &Client, cmd: &ModulesCommand) -> CliResult {
    match cmd {
        ModulesCommand::Ls(flags) => {
            let modules = client.list_modules().await.map_err(|e| failure(cli, &e))?;
            if flags.json {
                print_json(&json!(modules.iter().map(module_json).collect::<Vec<_>>()));
            } else if modules.is_empty() {
                if !cli.quiet {
                    eprintln!("wasmwiz: no modules stored");
                }
            } else {
                let rows: Vec<Vec<String>> = modules
                    .iter()
                    .map(|m| {
                        vec![
                            m.sha256.clone(),
                            format_bytes(m.size),
                            rfc3339(m.created_at),
                        ]
                    })
                    .collect();
                print!("{}", table(&["SHA256", "SIZE", "CREATED"], &rows));
            }
        }
        ModulesCommand::Info { sha256, json } => {
            let info = client
                .module_info(sha256)
                .await
                .map_err(|e| failure(cli, &e))?;
            if *json {
                print_json(&module_json(&info));
            } else {
                println!("sha256:   {}", info.sha256);
                println!(
                    "size:     {} ({} bytes)",
                    format_bytes(info.size),
                    info.size
                );
                println!("created:  {}", rfc3339(info.created_at));
                for i in &info.imports {
                    println!("import:   {}.{} ({})", i.module, i.name, i.kind);
                }
                for e in &info.exports {
                    println!("export:   {} ({})", e.name, e.kind);
                }
            }
        }
        ModulesCommand::Rm { sha256 } => {
            for sha in sha256 {
                client
                    .delete_module(sha)
                    .await
                    .map_err(|e| failure(cli, &e))?;
                if !cli.quiet {
                    println!("removed {sha}");
                }
            }
        }
    }
    Ok(0)
}

fn allowance(left: u64, per: u64, unmetered: bool) -> String {
    if unmetered {
        "unmetered".into()
    } else {
        format!("{left} of {per} left")
    }
}

/// "USED of MAX", or "USED (no limit)" when the maximum is 0.
fn used_of(used: String, max: u64, show: impl Fn(u64) -> String) -> String {
    if max == 0 {
        format!("{used} (no limit)")
    } else {
        format!("{used} of {}", show(max))
    }
}

/// `wasmwiz whoami`.
pub async fn whoami(cli: &Cli, client: &Client, flags: &JsonFlag) -> CliResult {
    let me = client.whoami().await.map_err(|e| failure(cli, &e))?;
    let limits = me.limits.clone().unwrap_or_default();
    if flags.json {
        print_json(&json!({
            "email": me.email,
            "tier": me.tier,
            "admin": me.admin,
            "key_id": me.key_id,
            "remaining_this_minute": me.remaining_this_minute,
            "remaining_today": me.remaining_today,
            "limits": {
                "per_minute": limits.per_minute,
                "per_day": limits.per_day,
                "max_module_bytes": limits.max_module_bytes,
                "max_stdin_bytes": limits.max_stdin_bytes,
                "max_memory_bytes": limits.max_memory_bytes,
                "max_fuel": limits.max_fuel,
                "max_timeout_ms": limits.max_timeout_ms,
                "max_output_bytes": limits.max_output_bytes,
                "max_concurrent": limits.max_concurrent,
                "unmetered": limits.unmetered,
                "max_stored_bytes": limits.max_stored_bytes,
                "max_stored_modules": limits.max_stored_modules,
                "uploads_per_minute": limits.uploads_per_minute,
                "max_concurrent_uploads": limits.max_concurrent_uploads,
                "upload_idle_timeout_ms": limits.upload_idle_timeout_ms,
                "max_args": limits.max_args,
                "max_args_bytes": limits.max_args_bytes,
                "max_api_keys": limits.max_api_keys,
            },
            "stored_bytes": me.stored_bytes,
            "stored_modules": me.stored_modules,
            "key_expires_at": rfc3339(me.key_expires_at.and_then(|t| std::time::SystemTime::try_from(t).ok())),
        }));
        return Ok(0);
    }
    println!("email:        {}", me.email);
    println!(
        "tier:         {}{}",
        me.tier,
        if me.admin { " (admin key)" } else { "" }
    );
    println!("key id:       {}", me.key_id);
    println!(
        "this minute:  {}",
        allowance(
            me.remaining_this_minute,
            limits.per_minute,
            limits.unmetered
        )
    );
    println!(
        "today:        {}",
        allowance(me.remaining_today, limits.per_day, limits.unmetered)
    );
    println!(
        "limits:       module {}, stdin {}, memory {}, fuel {}, timeout {} ms, output {}, {} concurrent",
        format_bytes(limits.max_module_bytes),
        format_bytes(limits.max_stdin_bytes),
        format_bytes(limits.max_memory_bytes),
        limits.max_fuel,
        limits.max_timeout_ms,
        format_bytes(limits.max_output_bytes),
        limits.max_concurrent
    );
    println!(
        "storage:      {}, {}",
        used_of(
            format_bytes(me.stored_bytes),
            limits.max_stored_bytes,
            format_bytes
        ),
        match limits.max_stored_modules {
            0 => format!("{} modules (no limit)", me.stored_modules),
            max => format!("{} of {max} modules", me.stored_modules),
        },
    );
    Ok(0)
}

fn usage_json(u: &Usage) -> serde_json::Value {
    json!({
        "executions": u.executions,
        "fuel_consumed": u.fuel_consumed,
        "duration_us": u.duration_us,
        "by_outcome": u.by_outcome,
        "daily": u.daily.iter().map(|d| json!({
            "date": d.date,
            "executions": d.executions,
            "fuel_consumed": d.fuel_consumed,
            "duration_us": d.duration_us,
        })).collect::<Vec<_>>(),
    })
}

/// `wasmwiz usage`.
pub async fn usage(cli: &Cli, client: &Client, args: &UsageArgs) -> CliResult {
    let usage = if args.all || args.email.is_some() {
        client.admin().usage(args.email.as_deref(), args.days).await
    } else {
        client.usage(args.days).await
    }
    .map_err(|e| failure(cli, &e))?;
    if args.json {
        print_json(&usage_json(&usage));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = usage
        .daily
        .iter()
        .map(|d| {
            vec![
                d.date.clone(),
                d.executions.to_string(),
                d.fuel_consumed.to_string(),
                format!("{:.3} s", d.duration_us as f64 / 1e6),
            ]
        })
        .collect();
    print!("{}", table(&["DATE", "EXECUTIONS", "FUEL", "TIME"], &rows));
    println!(
        "total: {} executions, {} fuel, {:.3} s",
        usage.executions,
        usage.fuel_consumed,
        usage.duration_us as f64 / 1e6
    );
    let mut outcomes: Vec<_> = usage.by_outcome.iter().collect();
    outcomes.sort();
    for (outcome, n) in outcomes {
        println!("  {outcome}: {n}");
    }
    Ok(0)
}

fn key_json(k: &ApiKeyInfo) -> serde_json::Value {
    json!({
        "key_id": k.key_id,
        "email": k.email,
        "tier": k.tier,
        "admin": k.admin,
        "label": k.label,
        "created_at": proto_time(k.created_at.as_ref()),
        "expires_at": k.expires_at.as_ref().map(|t| proto_time(Some(t))),
        "revoked_at": k.revoked_at.as_ref().map(|t| proto_time(Some(t))),
    })
}

/// `wasmwiz keys create|ls|revoke`.
pub async fn keys(cli: &Cli, client: &Client, cmd: &KeysCommand) -> CliResult {
    match cmd {
        KeysCommand::Create {
            email,
            tier,
            admin,
            label,
            expires_in,
            mine,
        } => {
            let expires_at = expires_in.map(|d| SystemTime::now() + d);
            let created: NewApiKey = if *mine {
                client.create_my_key(label, expires_at).await
            } else {
                let mut key = NewKey::new(email.clone().unwrap_or_default())
                    .tier(tier.clone().unwrap_or_default())
                    .admin(*admin)
                    .label(label.clone());
                key.expires_at = expires_at;
                client.admin().create_key(key).await
            }
            .map_err(|e| failure(cli, &e))?;
            if !cli.quiet {
                eprintln!(
                    "wasmwiz: created key {} (the secret below is shown once)",
                    created.key_id
                );
            }
            println!("{}", created.key);
        }
        KeysCommand::Ls { email, mine, json } => {
            let keys = if *mine {
                client.my_keys().await
            } else {
                client.admin().list_keys(email.as_deref()).await
            }
            .map_err(|e| failure(cli, &e))?;
            if *json {
                print_json(&json!(keys.iter().map(key_json).collect::<Vec<_>>()));
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        let state = if k.revoked_at.is_some() {
                            "revoked".to_string()
                        } else if let Some(t) = &k.expires_at {
                            format!("expires {}", proto_time(Some(t)))
                        } else {
                            "active".to_string()
                        };
                        vec![
                            k.key_id.clone(),
                            k.email.clone(),
                            k.tier.clone(),
                            if k.admin { "yes" } else { "" }.to_string(),
                            k.label.clone(),
                            proto_time(k.created_at.as_ref()),
                            state,
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["KEY ID", "EMAIL", "TIER", "ADMIN", "LABEL", "CREATED", "STATE"],
                        &rows
                    )
                );
            }
        }
        KeysCommand::Revoke { key_id, mine } => {
            if *mine {
                client.revoke_my_key(key_id).await
            } else {
                client.admin().revoke_key(key_id).await
            }
            .map_err(|e| failure(cli, &e))?;
            if !cli.quiet {
                println!("revoked {key_id}");
            }
        }
    }
    Ok(0)
}
