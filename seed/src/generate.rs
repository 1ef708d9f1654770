//! Deterministic row generation for the sample dataset: the same seed and sizes always give the
//! same rows. Pure: produces rows in PostgreSQL COPY text format, does no I/O.

use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::IndexedRandom as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::catalog;

/// First and last day of generated orders.
pub const FIRST_ORDER_DAY: (i32, u32, u32) = (2020, 1, 1);
pub const LAST_ORDER_DAY: (i32, u32, u32) = (2026, 10, 31);
/// Products per product type (45 types, so 405 products).
pub const PRODUCTS_PER_TYPE: usize = 9;

pub struct Product {
    pub id: u32,
    pub category: usize,
    pub price_cents: i64,
}

/// The generator: one RNG stream drives everything, so output depends only on the seed and sizes.
pub struct Generator {
    rng: ChaCha8Rng,
}

/// Appends one COPY text-format field, escaping what the format reserves.
pub fn push_field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Appends a row of fields, tab-separated and newline-terminated.
pub fn push_row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        push_field(out, f);
    }
    out.push('\n');
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `stores`: id, name, rls_user_id, is_online.
    pub fn stores(&mut self) -> String {
        let mut out = String::new();
        for (i, store) in catalog().stores.iter().enumerate() {
            // The UUIDs are the reference sample's; the draw that once made them is kept, so that
            // every value generated after it stays what it was for a given seed.
            let _: [u8; 16] = self.rng.random();
            push_row(
                &mut out,
                &[
                    &(i + 1).to_string(),
                    &store.name,
                    &store.rls_user_id.to_string(),
                    if store.online { "t" } else { "f" },
                ],
            );
        }
        out
    }

    /// `categories` and `product_types` rows.
    pub fn categories_and_types(&self) -> (String, String) {
        let (mut cats, mut types) = (String::new(), String::new());
        let mut type_id = 0;
        for (ci, cat) in catalog().categories.iter().enumerate() {
            push_row(&mut cats, &[&(ci + 1).to_string(), &cat.name]);
            for t in &cat.types {
                type_id += 1;
                push_row(&mut types, &[&type_id.to_string(), &(ci + 1).to_string(), &t.name]);
            }
        }
        (cats, types)
    }

    /// `products` rows and the facts the order generator needs about each product.
    pub fn products(&mut self) -> (String, Vec<Product>) {
        let mut out = String::new();
        let mut products = Vec::new();
        let mut type_id = 0;
        let brands = &catalog().brands;
        for (ci, cat) in catalog().categories.iter().enumerate() {
            for (ti, t) in cat.types.iter().enumerate() {
                type_id += 1;
                let mut combos: Vec<(usize, usize)> =
                    (0..brands.len()).flat_map(|b| (0..t.variants.len()).map(move |v| (b, v))).collect();
                // A deterministic shuffle, then the first few distinct brand/variant pairs.
                for i in (1..combos.len()).rev() {
                    let j = self.rng.random_range(0..=i);
                    combos.swap(i, j);
                }
                for (n, (b, v)) in combos.into_iter().take(PRODUCTS_PER_TYPE).enumerate() {
                    let id = products.len() as u32 + 1;
                    let name = format!("{} {} {}", brands[b], t.variants[v], t.noun);
                    let sku = format!("ZV-{:02}{:02}-{:03}", ci + 1, ti + 1, n + 1);
                    let dollars = self.rng.random_range(t.price.0..=t.price.1) as i64;
                    let price = dollars * 100 + if self.rng.random_bool(0.5) { 99 } else { 49 } - 100;
                    let price = price.max(99);
                    let margin_pct = self.rng.random_range(30..=55) as i64;
                    let cost = price * (100 - margin_pct) / 100;
                    let margin = (price - cost) as f64 * 100.0 / price as f64;
                    let description = self.description(&name, &t.uses, &t.features, &cat.name);
                    push_row(
                        &mut out,
                        &[
                            &id.to_string(),
                            &sku,
                            &name,
                            &(ci + 1).to_string(),
                            &type_id.to_string(),
                            &money(cost),
                            &money(price),
                            &format!("{margin:.2}"),
                            &description,
                        ],
                    );
                    products.push(Product { id, category: ci, price_cents: price });
                }
            }
        }
        (out, products)
    }

    fn description(&mut self, name: &str, uses: &[String], features: &[String], category: &str) -> String {
        let mut uses: Vec<&str> = uses.iter().map(String::as_str).collect();
        let first = uses.remove(self.rng.random_range(0..uses.len()));
        let second = uses.choose(&mut self.rng).copied();
        let mut features: Vec<&str> = features.iter().map(String::as_str).collect();
        let f1 = features.remove(self.rng.random_range(0..features.len()));
        let f2 = features.choose(&mut self.rng).copied();
        let audience = [
            "homeowners and weekend DIYers",
            "contractors and serious DIYers",
            "first-time home improvers",
            "anyone who likes to fix things themselves",
        ]
        .choose(&mut self.rng)
        .copied()
        .unwrap_or("DIYers");
        let mut s = format!("The {name} is made for {first}");
        if let Some(second) = second {
            s.push_str(&format!(" and {second}"));
        }
        s.push_str(&format!(". It comes with {f1}"));
        if let Some(f2) = f2 {
            s.push_str(&format!(" and {f2}"));
        }
        s.push_str(&format!(". A {} pick for {audience}.", category.to_lowercase()));
        s
    }

    /// `customers` rows, and for each store (index) the ids of the customers it serves.
    pub fn customers(&mut self, count: u32) -> (String, Vec<Vec<u32>>) {
        let mut out = String::with_capacity(count as usize * 96);
        let c = catalog();
        let mut by_store = vec![Vec::new(); c.stores.len()];
        let total_weight: u32 = c.stores.iter().map(|s| s.weight).sum();
        for id in 1..=count {
            let mut pick = self.rng.random_range(0..total_weight);
            let store = c
                .stores
                .iter()
                .position(|s| {
                    if pick < s.weight {
                        true
                    } else {
                        pick -= s.weight;
                        false
                    }
                })
                .unwrap_or(0);
            let first = c.first_names.choose(&mut self.rng).map_or("Alex", String::as_str);
            let last = c.last_names.choose(&mut self.rng).map_or("Doe", String::as_str);
            let email = format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), id);
            let phone = format!("({}) 555-01{:02}", c.stores[store].area_code, self.rng.random_range(0..100));
            let created = NaiveDate::from_ymd_opt(2019, 1, 1).unwrap_or_default()
                + Duration::days(self.rng.random_range(0..365 * 6));
            push_row(
                &mut out,
                &[
                    &id.to_string(),
                    first,
                    last,
                    &email,
                    &phone,
                    &(store + 1).to_string(),
                    &format!("{created} 09:00:00+00"),
                ],
            );
            by_store[store].push(id);
        }
        (out, by_store)
    }

    /// `inventory` rows: every store stocks every product.
    pub fn inventory(&mut self, products: &[Product]) -> String {
        let mut out = String::new();
        for (si, store) in catalog().stores.iter().enumerate() {
            for p in products {
                let max = if store.online { 500 } else { 150 };
                let stock = self.rng.random_range(0..=max);
                push_row(&mut out, &[&(si + 1).to_string(), &p.id.to_string(), &stock.to_string()]);
            }
        }
        out
    }
}

/// The number of orders to place on each day, summing to `total`: yearly growth, seasonality,
/// weekends busier than weekdays.
pub fn orders_per_day(total: u32) -> Vec<(NaiveDate, u32)> {
    let (y0, m0, d0) = FIRST_ORDER_DAY;
    let (y1, m1, d1) = LAST_ORDER_DAY;
    let (Some(first), Some(last)) =
        (NaiveDate::from_ymd_opt(y0, m0, d0), NaiveDate::from_ymd_opt(y1, m1, d1))
    else {
        return Vec::new();
    };
    // Overall monthly shape: a spring/summer project season and a holiday peak.
    const MONTH: [f64; 12] = [0.75, 0.8, 0.95, 1.1, 1.2, 1.2, 1.15, 1.1, 1.0, 0.95, 1.1, 1.3];
    let mut weights = Vec::new();
    let mut day = first;
    while day <= last {
        let growth = 1.0 + 0.12 * f64::from(day.year() - y0);
        let weekend = if day.weekday().number_from_monday() >= 6 { 1.35 } else { 1.0 };
        weights.push((day, growth * MONTH[day.month0() as usize] * weekend));
        day += Duration::days(1);
    }
    let sum: f64 = weights.iter().map(|w| w.1).sum();
    // Largest-remainder rounding keeps the exact total.
    let mut acc = 0.0;
    let mut placed = 0u32;
    weights
        .into_iter()
        .map(|(day, w)| {
            acc += w * f64::from(total) / sum;
            let upto = acc.round() as u32;
            let n = upto.saturating_sub(placed);
            placed = upto;
            (day, n)
        })
        .collect()
}

/// Generates orders and their items for one day into the two buffers; returns the next ids.
pub struct OrderWriter<'a> {
    pub products: &'a [Product],
    pub by_category: Vec<Vec<usize>>,
    pub customers_by_store: &'a [Vec<u32>],
    pub next_order: u32,
    pub next_item: u32,
}

impl<'a> OrderWriter<'a> {
    pub fn new(products: &'a [Product], customers_by_store: &'a [Vec<u32>]) -> Self {
        let mut by_category = vec![Vec::new(); catalog().categories.len()];
        for (i, p) in products.iter().enumerate() {
            by_category[p.category].push(i);
        }
        Self { products, by_category, customers_by_store, next_order: 1, next_item: 1 }
    }

    pub fn day(
        &mut self,
        g: &mut Generator,
        day: NaiveDate,
        count: u32,
        orders: &mut String,
        items: &mut String,
    ) {
        let rng = &mut g.rng;
        let catalog = catalog();
        let store_weight: u32 = catalog.stores.iter().map(|s| s.weight).sum();
        let month = day.month0() as usize;
        let cat_weight: u32 = catalog.categories.iter().map(|c| u32::from(c.season[month])).sum();
        let day_s = day.to_string();
        for _ in 0..count {
            // A store by its weight, then one of its customers: orders are placed at the
            // customer's own store, so a tenant's orders and customers stay together.
            let mut pick = rng.random_range(0..store_weight);
            let mut store = 0;
            for (i, s) in catalog.stores.iter().enumerate() {
                if pick < s.weight {
                    store = i;
                    break;
                }
                pick -= s.weight;
            }
            let Some(&customer) = self.customers_by_store[store].choose(rng) else { continue };
            let order_id = self.next_order;
            self.next_order += 1;
            let store_s = (store + 1).to_string();
            push_row(orders, &[&order_id.to_string(), &customer.to_string(), &store_s, &day_s]);
            let n_items = [1, 1, 1, 2, 2, 2, 3, 3, 4, 5].choose(rng).copied().unwrap_or(1);
            for _ in 0..n_items {
                let mut c = rng.random_range(0..cat_weight);
                let mut cat = 0;
                for (i, spec) in catalog.categories.iter().enumerate() {
                    let w = u32::from(spec.season[month]);
                    if c < w {
                        cat = i;
                        break;
                    }
                    c -= w;
                }
                let Some(&pi) = self.by_category[cat].choose(rng) else { continue };
                let product = &self.products[pi];
                let quantity: i64 = [1, 1, 1, 1, 2, 2, 3, 4].choose(rng).copied().unwrap_or(1);
                let discount: i64 = if rng.random_bool(0.75) {
                    0
                } else {
                    [5, 10, 15, 20, 25].choose(rng).copied().unwrap_or(0)
                };
                let gross = product.price_cents * quantity;
                let discount_amount = gross * discount / 100;
                push_row(
                    items,
                    &[
                        &self.next_item.to_string(),
                        &order_id.to_string(),
                        &store_s,
                        &product.id.to_string(),
                        &quantity.to_string(),
                        &money(product.price_cents),
                        &discount.to_string(),
                        &money(discount_amount),
                        &money(gross - discount_amount),
                    ],
                );
                self.next_item += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_fields_are_escaped() {
        let mut s = String::new();
        push_row(&mut s, &["a\tb", "c\\d", "e\nf"]);
        assert_eq!(s, "a\\tb\tc\\\\d\te\\nf\n");
    }

    #[test]
    fn order_days_sum_to_the_total_and_show_seasonality() {
        let days = orders_per_day(200_000);
        assert_eq!(days.iter().map(|d| d.1).sum::<u32>(), 200_000);
        let month_total = |y: i32, m: u32| -> u32 {
            days.iter().filter(|(d, _)| d.year() == y && d.month() == m).map(|d| d.1).sum()
        };
        assert!(month_total(2024, 12) > month_total(2024, 1), "holiday peak");
        assert!(month_total(2025, 5) > month_total(2020, 5), "growth year over year");
    }

    #[test]
    fn stores_carry_the_reference_samples_manager_uuids_whatever_the_seed() {
        let seattle_and_online = |seed: u64| {
            let rows = Generator::new(seed).stores();
            let lines: Vec<&str> = rows.lines().collect();
            (lines[0].to_owned(), lines[7].to_owned())
        };
        assert_eq!(
            seattle_and_online(42),
            (
                "1\tZava Retail Seattle\tf47ac10b-58cc-4372-a567-0e02b2c3d479\tf".to_owned(),
                "8\tZava Retail Online\t2f4e6d8c-1a3b-5c7e-9f0a-b2d4f6e8c0a2\tt".to_owned()
            )
        );
        assert_eq!(seattle_and_online(7), seattle_and_online(42));
        let ids: std::collections::BTreeSet<_> = catalog().stores.iter().map(|s| s.rls_user_id).collect();
        assert_eq!(ids.len(), 8, "one UUID per store");
        assert!(!ids.contains(&uuid::Uuid::nil()), "the all-stores UUID names no store");
    }

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let a = Generator::new(7).products().0;
        let b = Generator::new(7).products().0;
        let c = Generator::new(8).products().0;
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.lines().count(), 45 * PRODUCTS_PER_TYPE);
    }

    #[test]
    fn product_prices_cover_costs() {
        let (_, products) = Generator::new(1).products();
        assert!(products.iter().all(|p| p.price_cents >= 99));
    }
}
