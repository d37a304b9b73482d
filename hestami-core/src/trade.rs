//! The organization's trade catalogue: the trades its work, its technicians, its licences and
//! its prices may name, as data. A trade outside the catalogue is refused wherever it is given,
//! with the closest known one suggested: a typo (`plumbng`) must not slip past the rules that
//! are keyed by trade (a licence requirement matches no unknown trade, so it would not apply).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;

use crate::Invalid;
use crate::text::TradeCode;

/// The trades a new organization starts with, until it sets its own.
pub const DEFAULT_TRADES: &[&str] = &[
    "appliance_repair",
    "carpentry",
    "chimney",
    "cleaning",
    "concrete",
    "drain_cleaning",
    "drywall",
    "electrical",
    "fencing",
    "fire_protection",
    "flooring",
    "garage_door",
    "gas_fitting",
    "general_contracting",
    "glazing",
    "gutters",
    "handyman",
    "hvac",
    "insulation",
    "irrigation",
    "landscaping",
    "locksmith",
    "low_voltage",
    "masonry",
    "painting",
    "paving",
    "pest_control",
    "plumbing",
    "pool_service",
    "refrigeration",
    "restoration",
    "roofing",
    "security_systems",
    "septic",
    "sewer",
    "siding",
    "snow_removal",
    "solar",
    "tile",
    "tree_service",
    "water_treatment",
    "waterproofing",
    "welding",
    "well_pump",
];

/// At most this many trades in a catalogue.
pub const MAX_TRADES: usize = 200;

/// A set of trades, 1 to [`MAX_TRADES`] of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeCatalogue {
    trades: BTreeSet<TradeCode>,
}

/// A trade that is not in the catalogue, where it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTrade {
    /// The JSON path of the field that named it, such as `trades[1]`.
    pub field: String,
    /// The trade.
    pub trade: TradeCode,
    /// The known trade it most likely meant, if one is close.
    pub closest: Option<TradeCode>,
}

impl UnknownTrade {
    /// A sentence for a person.
    pub fn message(&self) -> String {
        match &self.closest {
            Some(closest) => format!(
                "{} is not a trade of this organization; did you mean {closest}?",
                self.trade
            ),
            None => format!(
                "{} is not a trade of this organization (see contractor/v1/getTrades)",
                self.trade
            ),
        }
    }
}

impl TradeCatalogue {
    /// [`DEFAULT_TRADES`].
    pub fn default_catalogue() -> Self {
        Self {
            trades: DEFAULT_TRADES
                .iter()
                .filter_map(|t| TradeCode::parse(t).ok())
                .collect(),
        }
    }

    /// A catalogue of `trades` (duplicates folded); refused when empty or over [`MAX_TRADES`].
    pub fn parse(trades: Vec<TradeCode>) -> Result<Self, Invalid> {
        let trades: BTreeSet<TradeCode> = trades.into_iter().collect();
        if trades.is_empty() {
            return Err(Invalid::new(
                "required",
                "the catalogue needs at least one trade",
            ));
        }
        if trades.len() > MAX_TRADES {
            return Err(Invalid::new(
                "too_many",
                format!("a catalogue holds at most {MAX_TRADES} trades"),
            ));
        }
        Ok(Self { trades })
    }

    /// The trades, in order.
    pub fn trades(&self) -> impl Iterator<Item = &TradeCode> {
        self.trades.iter()
    }

    /// Whether `trade` is in the catalogue.
    pub fn contains(&self, trade: &TradeCode) -> bool {
        self.trades.contains(trade)
    }

    /// The known trade closest to `trade` by edit distance (insertions, deletions,
    /// substitutions and swaps of neighbours), if it is within a third of the word, at least 2;
    /// ties go to the first in order.
    pub fn closest(&self, trade: &TradeCode) -> Option<&TradeCode> {
        let limit = (trade.as_str().len() / 3).max(2);
        self.trades
            .iter()
            .map(|known| (edit_distance(known.as_str(), trade.as_str()), known))
            .filter(|(d, _)| *d <= limit)
            .min_by_key(|(d, _)| *d)
            .map(|(_, known)| known)
    }

    /// Every trade of `given` (field path, trade) that is not in the catalogue.
    pub fn unknown<'a>(
        &self,
        given: impl IntoIterator<Item = (String, &'a TradeCode)>,
    ) -> Vec<UnknownTrade> {
        given
            .into_iter()
            .filter(|(_, trade)| !self.contains(trade))
            .map(|(field, trade)| UnknownTrade {
                field,
                trade: trade.clone(),
                closest: self.closest(trade).cloned(),
            })
            .collect()
    }
}

/// Optimal-string-alignment distance: Levenshtein plus the swap of two neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

impl Serialize for TradeCatalogue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.trades.iter())
    }
}

impl<'de> Deserialize<'de> for TradeCatalogue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let trades = Vec::<TradeCode>::deserialize(d)?;
        Self::parse(trades).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn trade(s: &str) -> TradeCode {
        TradeCode::parse(s).unwrap()
    }

    #[test]
    fn a_typo_suggests_the_trade_it_meant() {
        let c = TradeCatalogue::default_catalogue();
        assert_eq!(c.closest(&trade("plumbng")), Some(&trade("plumbing")));
        assert_eq!(c.closest(&trade("hvca")), Some(&trade("hvac")));
        assert_eq!(c.closest(&trade("electrcial")), Some(&trade("electrical")));
        assert_eq!(c.closest(&trade("astronautics")), None);
        let unknown = c.unknown([("trade".to_owned(), &trade("plumbng"))]);
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].message().contains("did you mean plumbing?"));
        assert!(
            c.unknown([("trade".to_owned(), &trade("plumbing"))])
                .is_empty()
        );
    }

    #[test]
    fn a_catalogue_is_not_empty_and_not_huge() {
        assert!(TradeCatalogue::parse(vec![]).is_err());
        let many = (0..=MAX_TRADES).map(|n| trade(&format!("t{n}"))).collect();
        assert!(TradeCatalogue::parse(many).is_err());
        let json = serde_json::to_string(&TradeCatalogue::default_catalogue()).unwrap();
        let back: TradeCatalogue = serde_json::from_str(&json).unwrap();
        assert_eq!(back, TradeCatalogue::default_catalogue());
        assert!(serde_json::from_str::<TradeCatalogue>("[]").is_err());
    }

    proptest! {
        #[test]
        fn the_distance_is_a_metric(a in "[a-z_]{0,12}", b in "[a-z_]{0,12}") {
            prop_assert_eq!(edit_distance(&a, &a), 0);
            prop_assert_eq!(edit_distance(&a, &b), edit_distance(&b, &a));
            prop_assert!(edit_distance(&a, &b) <= a.len().max(b.len()));
        }

        #[test]
        fn every_known_trade_is_its_own_closest(n in 0..DEFAULT_TRADES.len()) {
            let c = TradeCatalogue::default_catalogue();
            let t = trade(DEFAULT_TRADES[n]);
            prop_assert_eq!(c.closest(&t), Some(&t));
            prop_assert!(c.unknown([("f".to_owned(), &t)]).is_empty());
        }
    }
}
