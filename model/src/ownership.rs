//! Which synchronizer owns a product, and what another one may do with it.
//!
//! Two synchronizers often feed one product type (a mirror and the origin,
//! a local feed and a remote). muninn's layout does not record who made a
//! product, so muninn-sync records it beside muninn's tables, and these
//! rules decide whether a synchronizer may remove a product it comes
//! across: every store (SQLite, the in-memory archive) calls them, so that
//! the rule is written once.

/// A synchronizer's claim on products: its own name, and whose products its
/// section lets it take over (`adopt`, `adopt_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The synchronizer that runs.
    pub synchronizer: String,
    /// `adopt = true`: products that nobody owns (made by Python muninn, by
    /// another tool, or before muninn-sync recorded owners) become its own
    /// when it updates or removes them.
    pub adopt_unowned: bool,
    /// `adopt_from = ["other"]`: those synchronizers' products may be taken
    /// over too.
    pub adopt_from: Vec<String>,
}

/// What a synchronizer may do with a product, given its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Its own product.
    Owned,
    /// Not its own, but its section lets it take the product over: it may
    /// change or remove it, and then owns it.
    TakeOver,
    /// Another synchronizer's product, or nobody's without `adopt`: leave
    /// it alone. The text says whose it is and how to allow it.
    LeaveAlone(String),
}

impl Ownership {
    /// The claim of a synchronizer that owns the products it creates and
    /// adopts nothing.
    pub fn new(synchronizer: &str) -> Ownership {
        Ownership {
            synchronizer: synchronizer.to_string(),
            ..Ownership::default()
        }
    }

    /// Whether the section lets it take any product over: only then can
    /// an update change a product's owner.
    pub fn adopts(&self) -> bool {
        self.adopt_unowned || !self.adopt_from.is_empty()
    }

    /// What this synchronizer may do with a product that `owner` owns
    /// (`None`: nobody).
    pub fn claim(&self, owner: Option<&str>) -> Claim {
        match owner {
            Some(owner) if owner == self.synchronizer => Claim::Owned,
            Some(owner) if self.adopt_from.iter().any(|a| a == owner) => Claim::TakeOver,
            Some(owner) => Claim::LeaveAlone(format!(
                "synchronizer \"{owner}\" owns it, not \"{}\" (adopt_from = [\"{owner}\"] in \"{}\"'s section lets it take {owner}'s products over)",
                self.synchronizer, self.synchronizer
            )),
            None if self.adopt_unowned => Claim::TakeOver,
            None => Claim::LeaveAlone(format!(
                "no synchronizer owns it (made by muninn itself, another tool, or before muninn-sync recorded owners); \
                 adopt = true in \"{}\"'s section, or muninn-sync ARCHIVE {} --adopt, makes such products its own",
                self.synchronizer, self.synchronizer
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Claim, Ownership};

    #[test]
    fn a_synchronizer_takes_over_only_what_its_section_allows() {
        let mut mirror = Ownership::new("mirror");
        assert_eq!(mirror.claim(Some("mirror")), Claim::Owned);
        let other = mirror.claim(Some("cdse"));
        assert!(
            matches!(&other, Claim::LeaveAlone(why) if why.contains("\"cdse\" owns it, not \"mirror\"")),
            "{other:?}"
        );
        assert!(matches!(mirror.claim(None), Claim::LeaveAlone(_)));
        mirror.adopt_unowned = true;
        assert_eq!(mirror.claim(None), Claim::TakeOver);
        assert!(matches!(mirror.claim(Some("cdse")), Claim::LeaveAlone(_)));
        mirror.adopt_from = vec!["cdse".into()];
        assert_eq!(mirror.claim(Some("cdse")), Claim::TakeOver);
    }
}
