import Foundation

/// Every event type of the commerce domain, by its name in the log.
///
/// The domain owns these types: its commands decide which stream each event goes to (claims of unique
/// values included), check its rules against the streams' state, write its payload in the type's
/// shape and seal its personal fields. An event of one of these types appended any other way could
/// skip all of that: a second redemption of a voucher, a payload a read model cannot decode (which
/// then stops it at that position for good, the log being immutable), or personal data in clear
/// where erasing it is no longer possible. So `tally append` refuses them (`isDomainType`).
public enum DomainEvents {
    public static let types: [any DomainEvent.Type] = [
        // The fair
        BoothRegistered.self, OperatorAssigned.self, OperatorUnassigned.self, VoucherIssued.self, VoucherRedeemed.self, SaleRecorded.self,
        // The web shop
        UserRegistered.self, UserEmailChanged.self, UserDeactivated.self, CategoryCreated.self, CategoryChanged.self,
        ProductCreated.self, ProductPriceChanged.self, StockReceived.self, StockAdjusted.self, StockReserved.self, StockReleased.self,
        OrderPlaced.self, OrderConfirmed.self, OrderPaid.self, OrderShipped.self, OrderDelivered.self, OrderCancelled.self, RefundPaid.self,
        PaymentInitiated.self, PaymentSucceeded.self, PaymentFailed.self,
        // The self-checkout
        StoreOpened.self, ItemCreated.self, ItemChanged.self, PriceScheduled.self, MemberRegistered.self, SocialAccountLinked.self, MemberDeviceSeen.self,
        MemberProfileChanged.self, ShoppingListRevised.self, MemberDeactivated.self, CartOpened.self, CartItemAdded.self, CartItemRemoved.self,
        RestrictedItemsApproved.self, CartCheckedOut.self,
        // Across the three: unique values and erasure
        ValueClaimed.self, ValueReleased.self, PersonalDataErased.self,
    ]

    private static let names: Set<String> = Set(types.map { $0.eventType })

    /// Whether `type` names an event of the commerce domain.
    public static func isDomainType(_ type: String) -> Bool { names.contains(type) }
}
