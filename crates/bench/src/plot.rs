//! A latency-percentile plot (SVG) from one or more histograms, so runs
//! against Tidings and the bare reference can be compared at a glance.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Writes latency (ms) against percentile for each named histogram.
pub fn percentiles(
    path: &Path,
    title: &str,
    series: &[(&str, &Histogram<u64>)],
) -> anyhow::Result<()> {
    let quantiles: Vec<f64> = (0..=100)
        .map(|i| f64::from(i) / 100.0)
        .chain([0.995, 0.999])
        .collect();
    let max_ms = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(0.999) as f64 / 1000.0)
        .fold(0.1, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, 0.0..max_ms * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()?;
    let colors = [RED, BLUE, GREEN, MAGENTA];
    for (i, (name, h)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points = quantiles
            .iter()
            .map(|q| (q * 100.0, h.value_at_quantile(*q) as f64 / 1000.0));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
