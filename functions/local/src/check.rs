//! `gateway config check [--config FILE]`: validates the config and shows, per provider, whether
//! it is configured and, if not, what to set. Never prints a secret.

use gw_route::Config;

/// The report for a loaded config (`name`: where it came from).
pub(crate) fn report(cfg: &Config, name: &str) -> String {
    let ready = cfg
        .providers
        .iter()
        .filter(|p| p.missing().is_none())
        .count();
    let mut out = format!(
        "{name}: valid; {} providers ({ready} configured), {} routes, {} proxy keys\n",
        cfg.providers.len(),
        cfg.routes.len(),
        cfg.keys.len()
    );
    let width = cfg.providers.iter().map(|p| p.id.len()).max().unwrap_or(0);
    for p in &cfg.providers {
        let line = match p.missing() {
            None => {
                let vars: Vec<&str> = p.credentials.iter().map(|c| c.var.as_str()).collect();
                let from = if vars.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", vars.join(", "))
                };
                format!("configured      {}{from}", p.base_url)
            }
            Some(what) => format!("not configured  set {what}"),
        };
        out.push_str(&format!("  {:width$}  {line}\n", p.id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_each_provider_misses_and_no_secret() {
        let env = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk-check-SECRET-1".to_owned()),
            _ => None,
        };
        let cfg = Config::load(gw_native::EMBEDDED_CONFIG, "gateway.yaml", &env).unwrap();
        let r = report(&cfg, "gateway.yaml");
        assert!(r.starts_with("gateway.yaml: valid; "), "{r}");
        let line = |id: &str| {
            r.lines()
                .find(|l| l.trim_start().starts_with(&format!("{id} ")))
                .unwrap_or_else(|| panic!("no line for {id} in\n{r}"))
                .to_owned()
        };
        assert!(
            line("openai").contains("configured      https://api.openai.com/v1  (OPENAI_API_KEY)")
        );
        assert!(line("anthropic").contains("not configured  set ANTHROPIC_API_KEY"));
        assert!(line("azure-openai").contains("set AZURE_OPENAI_BASE_URL"));
        assert!(line("vertex").contains("set GOOGLE_APPLICATION_CREDENTIALS"));
        assert!(!r.contains("sk-check-SECRET"));
    }
}
