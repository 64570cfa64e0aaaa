//! The generated server and client talk over loopback: a served RPC answers, a
//! streaming RPC ends after its frames, and an RPC sundial does not implement answers
//! UNIMPLEMENTED from the generated default.

use std::pin::Pin;

use sundial_rmq_proto::v2::messaging_service_client::MessagingServiceClient;
use sundial_rmq_proto::v2::messaging_service_server::{MessagingService, MessagingServiceServer};
use sundial_rmq_proto::v2::{self, receive_message_response::Content, Code};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

struct OneQueue;

fn ok() -> Option<v2::Status> {
    Some(v2::Status {
        code: Code::Ok as i32,
        message: String::new(),
    })
}

#[tonic::async_trait]
impl MessagingService for OneQueue {
    async fn query_route(
        &self,
        request: Request<v2::QueryRouteRequest>,
    ) -> Result<Response<v2::QueryRouteResponse>, Status> {
        let req = request.into_inner();
        Ok(Response::new(v2::QueryRouteResponse {
            status: ok(),
            message_queues: vec![v2::MessageQueue {
                topic: req.topic,
                id: 0,
                permission: v2::Permission::ReadWrite as i32,
                broker: Some(v2::Broker {
                    name: "sundial".into(),
                    id: 0,
                    endpoints: req.endpoints,
                }),
                accept_message_types: vec![v2::MessageType::Delay as i32],
            }],
        }))
    }

    async fn receive_message(
        &self,
        _request: Request<v2::ReceiveMessageRequest>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<v2::ReceiveMessageResponse, Status>> + Send>>>,
        Status,
    > {
        let frames = vec![Ok(v2::ReceiveMessageResponse {
            content: Some(Content::Status(v2::Status {
                code: Code::MessageNotFound as i32,
                message: "no message".into(),
            })),
        })];
        Ok(Response::new(Box::pin(tokio_stream::iter(frames))))
    }
}

#[tokio::test]
async fn served_streamed_and_unimplemented_rpcs_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MessagingServiceServer::new(OneQueue))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let mut client = MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");

    let route = client
        .query_route(v2::QueryRouteRequest {
            topic: Some(v2::Resource {
                resource_namespace: String::new(),
                name: "t".into(),
            }),
            endpoints: Some(v2::Endpoints {
                scheme: v2::AddressScheme::IPv4 as i32,
                addresses: vec![v2::Address {
                    host: "127.0.0.1".into(),
                    port: i32::from(addr.port()),
                }],
            }),
        })
        .await
        .expect("query route")
        .into_inner();
    assert_eq!(route.status.map(|s| s.code()), Some(Code::Ok));
    assert_eq!(route.message_queues.len(), 1);
    assert_eq!(
        route.message_queues[0].accept_message_types,
        vec![v2::MessageType::Delay as i32]
    );

    let mut frames = client
        .receive_message(v2::ReceiveMessageRequest::default())
        .await
        .expect("receive")
        .into_inner();
    let first = frames.next().await.expect("a frame").expect("not an error");
    assert!(matches!(
        first.content,
        Some(Content::Status(s)) if s.code() == Code::MessageNotFound
    ));
    assert!(frames.next().await.is_none(), "the stream ends");

    let err = client
        .pull_message(v2::PullMessageRequest::default())
        .await
        .expect_err("pull is not served");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let err = client
        .heartbeat(v2::HeartbeatRequest::default())
        .await
        .expect_err("heartbeat is not served by this test server");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    server.abort();
}
