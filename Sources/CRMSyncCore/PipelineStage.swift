/// One stage of one of the CRM's deal pipelines, as the CRM lists it (its id, label and order),
/// so a stage the mapping does not name shows up before any deal sits in it.
public struct PipelineStage: Sendable, Equatable {
    public var pipeline: String
    public var pipelineLabel: String?
    public var stage: String
    public var label: String?
    public var displayOrder: Int

    public init(pipeline: String, pipelineLabel: String?, stage: String, label: String?, displayOrder: Int) {
        self.pipeline = pipeline
        self.pipelineLabel = pipelineLabel
        self.stage = stage
        self.label = label
        self.displayOrder = displayOrder
    }
}
