//! Validate by converting: proto requests become domain specs here, so no
//! handler can skip a check (limits against the tier, sizes, sha256 shape,
//! args and env that WASI can carry).

use std::{collections::HashMap, time::Duration};

use wasmwiz_proto::v1;

use super::errors::{AboveTierMax, ApiError, Unit};
use crate::config::Tier;

/// Limits with tier defaults filled in and maxima enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub fuel: u64,
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    /// Bytes of file contents the guest's filesystem may hold (used only
    /// when the request gives it one).
    pub fs_bytes: u64,
    /// Interactive runs: the longest one wait for stdin may last.
    pub idle_timeout_ms: u64,
}

impl EffectiveLimits {
    /// `tier_name` is for the error: clients say whose maximum it is.
    pub fn resolve(
        requested: Option<&v1::Limits>,
        tier: &Tier,
        tier_name: &str,
    ) -> Result<Self, ApiError> {
        let pick = |field: &str, value: u64, max: u64, unit: Unit| -> Result<u64, ApiError> {
            match value {
                0 => Ok(max),
                v if v > max => Err(AboveTierMax {
                    field: format!("limits.{field}"),
                    requested: v,
                    max,
                    unit,
                    tier: tier_name.to_string(),
                    counting: None,
                }
                .into()),
                v => Ok(v),
            }
        };
        let r = requested.cloned().unwrap_or_default();
        Ok(Self {
            fuel: pick("fuel", r.fuel, tier.max_fuel, Unit::Fuel)?,
            memory_bytes: pick(
                "memory_bytes",
                r.memory_bytes,
                tier.max_memory_bytes,
                Unit::Bytes,
            )?,
            timeout_ms: pick("timeout_ms", r.timeout_ms, tier.max_timeout_ms, Unit::Ms)?,
            max_output_bytes: pick(
                "max_output_bytes",
                r.max_output_bytes,
                tier.max_output_bytes,
                Unit::Bytes,
            )?,
            fs_bytes: pick("fs_bytes", r.fs_bytes, tier.max_fs_bytes, Unit::Bytes)?,
            idle_timeout_ms: pick(
                "idle_timeout_ms",
                r.idle_timeout_ms,
                tier.max_idle_timeout_ms,
                Unit::Ms,
            )?,
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn to_proto(self) -> v1::Limits {
        v1::Limits {
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            timeout_ms: self.timeout_ms,
            max_output_bytes: self.max_output_bytes,
            fs_bytes: self.fs_bytes,
            idle_timeout_ms: self.idle_timeout_ms,
        }
    }
}

/// A lowercase sha256 hex string, or INVALID_ARGUMENT naming `field`.
pub fn sha256_field(field: &str, value: &str) -> Result<String, ApiError> {
    let lower = value.trim().to_ascii_lowercase();
    if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(ApiError::invalid(
            field,
            "must be a sha256 as 64 hex digits",
        ))
    }
}

/// Size checks against the tier named `tier_name`.
pub fn check_size(field: &str, size: u64, max: u64, tier_name: &str) -> Result<(), ApiError> {
    if size > max {
        return Err(AboveTierMax {
            field: field.to_string(),
            requested: size,
            max,
            unit: Unit::Bytes,
            tier: tier_name.to_string(),
            counting: None,
        }
        .into());
    }
    Ok(())
}

/// The guest's command line and environment, checked for what WASI can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    pub program_name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    pub fn new(
        program_name: String,
        args: Vec<String>,
        env: HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let program_name = if program_name.is_empty() {
            "main.wasm".to_string()
        } else {
            program_name
        };
        if program_name.contains('\0') {
            return Err(ApiError::invalid(
                "program_name",
                "must not contain NUL bytes",
            ));
        }
        for (i, arg) in args.iter().enumerate() {
            if arg.contains('\0') {
                return Err(ApiError::invalid(
                    format!("args[{i}]"),
                    "must not contain NUL bytes",
                ));
            }
        }
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        for (key, value) in &env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                return Err(ApiError::invalid(
                    format!("env[{key}]"),
                    "names must be non-empty without '=' or NUL; values without NUL",
                ));
            }
        }
        Ok(Self {
            program_name,
            args,
            env,
        })
    }

    /// Items the guest sees in argv and environ (argv\[0\] included).
    pub fn items(&self) -> usize {
        1 + self.args.len() + self.env.len()
    }

    /// Bytes WASI copies into the guest for argv and environ: each
    /// `arg\0` and `NAME=value\0`.
    pub fn bytes(&self) -> u64 {
        let args: usize = std::iter::once(&self.program_name)
            .chain(&self.args)
            .map(|a| a.len() + 1)
            .sum();
        let env: usize = self.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        (args + env) as u64
    }

    /// Refuses a command line past the tier's `max_args` items or
    /// `max_args_bytes` (args and env together, since WASI copies both into
    /// the guest alike). The violation names `args_field` when the args
    /// alone pass the limit, `env` otherwise.
    pub fn within(self, tier: &Tier, tier_name: &str, args_field: &str) -> Result<Self, ApiError> {
        let args_only = CommandLine {
            env: Vec::new(),
            ..self.clone()
        };
        let above = |field: &str, requested, max, unit, counting| {
            Err(AboveTierMax {
                field: field.to_string(),
                requested,
                max,
                unit,
                tier: tier_name.to_string(),
                counting: Some(counting),
            }
            .into())
        };
        let max_items = u64::from(tier.max_args);
        if self.items() as u64 > max_items {
            let field = if args_only.items() as u64 > max_items {
                args_field
            } else {
                "env"
            };
            return above(
                field,
                self.items() as u64,
                max_items,
                Unit::Count,
                "args and env together (program_name included)",
            );
        }
        if self.bytes() > tier.max_args_bytes {
            let field = if args_only.bytes() > tier.max_args_bytes {
                args_field
            } else {
                "env"
            };
            return above(
                field,
                self.bytes(),
                tier.max_args_bytes,
                Unit::Bytes,
                "args and env together (each counted with its NUL, env as NAME=value)",
            );
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_tiers;

    #[test]
    fn zero_means_the_tier_maximum_and_above_is_refused() {
        let tiers = default_tiers();
        let free = &tiers["free"];
        let limits = EffectiveLimits::resolve(None, free, "free").unwrap();
        assert_eq!(limits.fuel, free.max_fuel);
        let err = EffectiveLimits::resolve(
            Some(&v1::Limits {
                memory_bytes: free.max_memory_bytes + 1,
                ..Default::default()
            }),
            free,
            "free",
        )
        .unwrap_err();
        assert!(
            matches!(err, ApiError::AboveTierMax(ref above) if above.field == "limits.memory_bytes")
        );
    }

    #[test]
    fn fs_bytes_defaults_to_the_tier_maximum_and_shows_in_the_proto() {
        let free = &default_tiers()["free"];
        let limits = EffectiveLimits::resolve(None, free, "free").unwrap();
        assert_eq!(limits.to_proto().fs_bytes, free.max_fs_bytes);
    }

    #[test]
    fn fs_bytes_above_the_tier_maximum_is_refused_naming_the_field() {
        let free = &default_tiers()["free"];
        let err = EffectiveLimits::resolve(
            Some(&v1::Limits {
                fs_bytes: free.max_fs_bytes + 1,
                ..Default::default()
            }),
            free,
            "free",
        )
        .unwrap_err();
        assert!(
            matches!(err, ApiError::AboveTierMax(ref above) if above.field == "limits.fs_bytes")
        );
    }

    fn command_line(args: usize, env: usize, len: usize) -> CommandLine {
        let args = (0..args).map(|_| "a".repeat(len)).collect();
        let env = (0..env)
            .map(|i| (format!("K{i}"), "v".repeat(len)))
            .collect();
        CommandLine::new("p".into(), args, env).unwrap()
    }

    #[test]
    fn command_line_bytes_count_what_the_guest_sees() {
        // "p\0" + "aa\0" + "K0=vv\0"
        assert_eq!(command_line(1, 1, 2).bytes(), 2 + 3 + 6);
        assert_eq!(command_line(1, 1, 2).items(), 3);
    }

    #[test]
    fn too_many_args_name_args_and_too_many_env_entries_name_env() {
        let free = default_tiers()["free"].clone();
        let n = free.max_args as usize;
        let on = |result: Result<CommandLine, ApiError>| match result.unwrap_err() {
            ApiError::AboveTierMax(above) => above.field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            on(command_line(n, 0, 1).within(&free, "free", "args")),
            "args"
        );
        assert_eq!(
            on(command_line(n / 2, n / 2, 1).within(&free, "free", "args")),
            "env"
        );
        assert!(command_line(n - 1, 0, 1)
            .within(&free, "free", "args")
            .is_ok());
    }

    #[test]
    fn too_many_arg_bytes_are_refused_with_the_maximum() {
        let free = default_tiers()["free"].clone();
        let big = free.max_args_bytes as usize;
        let err = command_line(1, 0, big)
            .within(&free, "free", "args")
            .unwrap_err();
        assert!(err.to_string().contains(&free.max_args_bytes.to_string()));
        let err = command_line(0, 1, big)
            .within(&free, "free", "args")
            .unwrap_err();
        assert!(matches!(err, ApiError::AboveTierMax(ref above) if above.field == "env"));
    }

    #[test]
    fn sha256_and_command_line_are_checked() {
        assert!(sha256_field("module_sha256", "abc").is_err());
        assert_eq!(
            sha256_field("s", &"AB".repeat(32)).unwrap(),
            "ab".repeat(32)
        );
        assert!(CommandLine::new(String::new(), vec!["a\0b".into()], HashMap::new()).is_err());
        let env = HashMap::from([("A=B".to_string(), "x".to_string())]);
        assert!(CommandLine::new(String::new(), vec![], env).is_err());
        assert_eq!(
            CommandLine::new(String::new(), vec![], HashMap::new())
                .unwrap()
                .program_name,
            "main.wasm"
        );
    }
}
