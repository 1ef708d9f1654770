//! The DIY product catalog the seed draws from: 9 categories, their product types and the words
//! each type's product names and descriptions are built from, the stores, and customer names.
//! The data lives in `seed/catalog.yaml`, embedded at compile time and parsed once. Pure.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// One product type: the words that make its product names and descriptions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    pub name: String,
    /// The noun products of this type are called by ("Cordless Drill").
    pub noun: String,
    /// Variants that distinguish products of the type (size, finish, power...).
    pub variants: Vec<String>,
    /// What the product is for, written as a customer would search for it.
    pub uses: Vec<String>,
    /// Features and materials.
    pub features: Vec<String>,
    /// Typical base price range in dollars.
    pub price: (u32, u32),
}

#[derive(Debug)]
pub struct CategorySpec {
    pub name: String,
    pub types: Vec<TypeSpec>,
    /// Relative sales weight per month (January first): seasonality.
    pub season: [u8; 12],
}

/// One of the sample's stores.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreSpec {
    pub name: String,
    pub online: bool,
    /// Relative share of the customers this store serves.
    pub weight: u32,
    /// For plausible (fictional, 555-01xx) phone numbers.
    pub area_code: u16,
    /// The store manager's UUID (`retail.stores.rls_user_id`), as in the reference sample.
    pub rls_user_id: uuid::Uuid,
}

/// Everything the generator draws from.
#[derive(Debug)]
pub struct Catalog {
    pub brands: Vec<String>,
    pub categories: Vec<CategorySpec>,
    pub stores: Vec<StoreSpec>,
    pub first_names: Vec<String>,
    pub last_names: Vec<String>,
}

/// `seed/catalog.yaml` as written: seasons by name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CatalogFile {
    brands: Vec<String>,
    seasons: BTreeMap<String, [u8; 12]>,
    categories: Vec<CategoryEntry>,
    stores: Vec<StoreSpec>,
    first_names: Vec<String>,
    last_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryEntry {
    name: String,
    season: String,
    types: Vec<TypeSpec>,
}

const CATALOG_YAML: &str = include_str!("../catalog.yaml");

/// The embedded catalog (checked by this module's tests, so it always parses).
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| parse(CATALOG_YAML).unwrap_or_else(|e| panic!("seed/catalog.yaml: {e}")))
}

/// Parses and checks a catalog: every season named exists, and every list the generator picks
/// from has something in it.
fn parse(yaml: &str) -> Result<Catalog, String> {
    let file: CatalogFile = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    let mut categories = Vec::with_capacity(file.categories.len());
    for c in file.categories {
        let season = *file
            .seasons
            .get(&c.season)
            .ok_or_else(|| format!("category {:?} names unknown season {:?}", c.name, c.season))?;
        for t in &c.types {
            if t.variants.is_empty() || t.uses.is_empty() || t.features.is_empty() {
                return Err(format!("type {:?} needs variants, uses and features", t.name));
            }
            if t.price.0 > t.price.1 {
                return Err(format!("type {:?}: price range {:?} is inverted", t.name, t.price));
            }
        }
        if c.types.is_empty() || season.iter().all(|w| *w == 0) {
            return Err(format!("category {:?} needs types and a season with some weight", c.name));
        }
        categories.push(CategorySpec { name: c.name, types: c.types, season });
    }
    if file.brands.is_empty() || file.first_names.is_empty() || file.last_names.is_empty() {
        return Err("brands, firstNames and lastNames must not be empty".into());
    }
    if file.stores.is_empty() || file.stores.iter().any(|s| s.weight == 0) {
        return Err("stores must list at least one store, each with a weight above 0".into());
    }
    Ok(Catalog {
        brands: file.brands,
        categories,
        stores: file.stores,
        first_names: file.first_names,
        last_names: file.last_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_has_the_samples_shape() {
        let c = parse(CATALOG_YAML).expect("seed/catalog.yaml parses");
        assert_eq!(c.categories.len(), 9);
        assert_eq!(c.categories.iter().map(|c| c.types.len()).sum::<usize>(), 45);
        assert_eq!(c.stores.len(), 8);
        assert_eq!(c.stores.iter().filter(|s| s.online).count(), 1);
        assert_eq!(c.stores[0].name, "Zava Retail Seattle");
    }

    #[test]
    fn an_unknown_season_is_refused() {
        let yaml = CATALOG_YAML.replacen("season: giftSeason", "season: someSeason", 1);
        let err = parse(&yaml).unwrap_err();
        assert!(err.contains("someSeason"), "{err}");
    }
}
