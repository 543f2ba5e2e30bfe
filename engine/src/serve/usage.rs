//! `helora clients usage`: what each identity, and all of them together, have spent of each
//! adapter, in queries and in units of d_in. About d_in queries to a projection identify
//! its A·B up to the PLL's noise (docs/security.md §4.3), so the fraction of d_in is what
//! an operator watches; the query counts alone do not say how close that is.

use super::state::{Projection, Store};
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One identity's (or, with `client` None, every identity's) use of one adapter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdapterUse {
    /// None: all identities together.
    pub client: Option<String>,
    pub adapter: String,
    /// The most queries made to any one projection.
    pub queries: u64,
    /// The largest used / d_in over the projections; None until a server has recorded the
    /// adapter's shapes.
    pub d_in_fraction: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UsageReport {
    pub identities: Vec<AdapterUse>,
    pub adapters: Vec<AdapterUse>,
}

/// Reads the counts and the recorded shapes from `store`.
pub async fn report(store: &dyn Store) -> Result<UsageReport> {
    let widths: HashMap<(String, usize, String), usize> = store
        .projections()
        .await?
        .into_iter()
        .map(
            |(
                adapter,
                Projection {
                    layer,
                    module,
                    d_in,
                },
            )| ((adapter, layer, module), d_in),
        )
        .collect();
    let identities = summarise(
        store
            .usage()
            .await?
            .into_iter()
            .map(|(client, adapter, layer, module, used)| {
                (Some(client), adapter, layer, module, used)
            }),
        &widths,
    );
    let adapters = summarise(
        store
            .adapter_usage()
            .await?
            .into_iter()
            .map(|(adapter, layer, module, used)| (None, adapter, layer, module, used)),
        &widths,
    );
    Ok(UsageReport {
        identities,
        adapters,
    })
}

type Row = (Option<String>, String, usize, String, u64);

/// Per (client, adapter): the largest count and the largest fraction of d_in.
fn summarise(
    rows: impl Iterator<Item = Row>,
    widths: &HashMap<(String, usize, String), usize>,
) -> Vec<AdapterUse> {
    let mut summary: BTreeMap<(Option<String>, String), AdapterUse> = BTreeMap::new();
    for (client, adapter, layer, module, used) in rows {
        let fraction = widths
            .get(&(adapter.clone(), layer, module))
            .filter(|&&d_in| d_in > 0)
            .map(|&d_in| used as f64 / d_in as f64);
        let entry = summary
            .entry((client.clone(), adapter.clone()))
            .or_insert(AdapterUse {
                client,
                adapter,
                queries: 0,
                d_in_fraction: None,
            });
        entry.queries = entry.queries.max(used);
        entry.d_in_fraction = match (entry.d_in_fraction, fraction) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    summary.into_values().collect()
}

/// The table `clients usage` prints.
pub fn table(report: &UsageReport) -> String {
    let fraction = |f: Option<f64>| f.map_or("—".to_string(), |f| format!("{:.1} %", 100.0 * f));
    let mut out = format!(
        "{:<24} {:<16} {:>10} {:>12}\n",
        "client", "adapter", "queries", "of d_in"
    );
    for u in report.identities.iter().chain(&report.adapters) {
        out.push_str(&format!(
            "{:<24} {:<16} {:>10} {:>12}\n",
            u.client.as_deref().unwrap_or("(all clients)"),
            u.adapter,
            u.queries,
            fraction(u.d_in_fraction)
        ));
    }
    out.push_str(
        "queries: the most made to one projection; of d_in: the largest share of a \
         projection's input width (about 100 % identifies its A·B up to the noise)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_share_of_d_in_is_reported_per_client_and_adapter() {
        let widths = HashMap::from([
            (("a".to_string(), 0, "q_proj".to_string()), 100),
            (("a".to_string(), 0, "v_proj".to_string()), 400),
        ]);
        let rows = vec![
            (
                Some("x".to_string()),
                "a".to_string(),
                0,
                "q_proj".to_string(),
                30,
            ),
            (
                Some("x".to_string()),
                "a".to_string(),
                0,
                "v_proj".to_string(),
                200,
            ),
            (
                Some("y".to_string()),
                "a".to_string(),
                0,
                "q_proj".to_string(),
                5,
            ),
            // No recorded width: counted, no fraction.
            (
                Some("y".to_string()),
                "b".to_string(),
                1,
                "q_proj".to_string(),
                7,
            ),
        ];
        let summary = summarise(rows.into_iter(), &widths);
        assert_eq!(summary.len(), 3);
        assert_eq!(summary[0].queries, 200);
        assert_eq!(summary[0].d_in_fraction, Some(0.5));
        assert_eq!(summary[1].d_in_fraction, Some(0.05));
        assert_eq!((summary[2].queries, summary[2].d_in_fraction), (7, None));
    }
}
