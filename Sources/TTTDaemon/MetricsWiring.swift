import Metrics
import Prometheus
import TTTMetrics

/// What the modules record through swift-metrics goes to a Prometheus registry, with the help text
/// and buckets of the catalogue. Metrics not in it (a library's) are dropped: the endpoint shows
/// only the documented `tttd_` names.
struct CatalogueMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    private let catalogue: [String: MetricDescription]

    init(registry: PrometheusCollectorRegistry, catalogue: [MetricDescription] = TTTMetric.all) {
        self.registry = registry
        self.catalogue = Dictionary(uniqueKeysWithValues: catalogue.map { ($0.name, $0) })
    }

    /// Bootstraps swift-metrics with a new registry (once per process, before any metric is made)
    /// and returns that registry.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(CatalogueMetricsFactory(registry: registry))
        return registry
    }

    private func descriptor(_ label: String) -> (MetricNameDescriptor, MetricDescription)? {
        guard let metric = catalogue[label] else { return nil }
        return (MetricNameDescriptor(metricName: metric.name, unitName: "", helpText: metric.help), metric)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        guard let (descriptor, _) = descriptor(label) else { return NOOPMetricsHandler.instance }
        return registry.makeCounter(descriptor: descriptor, labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        guard let (descriptor, _) = descriptor(label) else { return NOOPMetricsHandler.instance }
        return registry.makeGauge(descriptor: descriptor, labels: dimensions)
    }

    /// tttd's distributions are durations (Timer); a Recorder is a gauge.
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard !aggregate, let (descriptor, _) = descriptor(label) else { return NOOPMetricsHandler.instance }
        return registry.makeGauge(descriptor: descriptor, labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        guard let (descriptor, metric) = descriptor(label) else { return NOOPMetricsHandler.instance }
        return registry.makeDurationHistogram(descriptor: descriptor, labels: dimensions, buckets: metric.buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
